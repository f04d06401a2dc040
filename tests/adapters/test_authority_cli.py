from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.authority_cli import main, parse_duration
from mesh.admission import AdmissionPolicy, AdmissionReason
from mesh.admission_formats import (
    format_certificate,
    format_private_key,
    parse_certificate,
    parse_private_key,
    parse_public_key,
)
from mesh.certificate import authority_public_key, sign_certificate

PEER = "12D3KooWCWxcJ9S1BtZMSkEjY98kfN8W7CKNAiHvY2UPoz6qoq9F"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def umask_zero() -> Iterator[None]:
    # The key file must come out 0600 whatever the umask lets through.
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def authority(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    key = tmp_path / "authority.key"
    code, out, _ = run(capsys, "init", "--key", str(key))
    assert code == 0
    return key, out.strip()


def test_init_creates_a_private_file_and_prints_its_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], umask_zero: None
) -> None:
    key = tmp_path / "authority.key"
    code, out, err = run(capsys, "init", "--key", str(key))
    assert code == 0, err
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(parse_private_key(key.read_text())) == 32
    public = out.strip()
    assert len(parse_public_key(public)) == 32
    assert run(capsys, "pubkey", "--key", str(key))[1].strip() == public


def test_init_refuses_to_overwrite(
    authority: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = authority
    before = key.read_bytes()
    code, out, err = run(capsys, "init", "--key", str(key))
    assert code == 2 and out == ""
    assert "already exists; refusing to overwrite" in err and err.count("\n") == 1
    assert key.read_bytes() == before


def test_init_does_not_follow_a_planted_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "authority.key"
    link.symlink_to(target)
    code, _, err = run(capsys, "init", "--key", str(link))
    assert code == 2 and "refusing" in err
    assert not target.exists()


def test_init_in_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "init", "--key", str(tmp_path / "no" / "such.key"))
    assert code == 2 and "cannot create" in err and err.count("\n") == 1


def test_issue_then_show_round_trip(
    authority: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, public = authority
    cert_file = tmp_path / "node.cert"
    before_ms = time.time_ns() // 1_000_000
    code, out, err = run(
        capsys,
        "issue",
        "--key",
        str(key),
        "--peer",
        PEER,
        "--valid",
        "12h",
        "--out",
        str(cert_file),
    )
    assert code == 0, err
    assert out == "" and f"issued certificate for {PEER}" in err
    cert = parse_certificate(cert_file.read_text())
    assert cert.peer_id == PEER
    # Certificates count whole milliseconds: compare at that precision.
    issued_ms = cert.expires_at_ms - 12 * 3600 * 1000
    assert before_ms <= issued_ms <= time.time_ns() // 1_000_000
    policy = AdmissionPolicy(authority_keys=(parse_public_key(public),))
    assert policy.check(PEER, cert, time.time()) is AdmissionReason.ADMITTED

    code, out, _ = run(capsys, "show", str(cert_file), "--authority-key", public)
    assert code == 0
    assert f"peer_id:    {PEER}" in out and "(in 11h 59m)" in out and "verifies:   yes" in out


def test_issue_writes_to_stdout_by_default(
    authority: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = authority
    code, out, _ = run(capsys, "issue", "--key", str(key), "--peer", PEER)
    assert code == 0
    days = (parse_certificate(out).expires_at_ms / 1000 - time.time()) / 86400
    assert 29.99 < days <= 30  # the default validity


def test_issue_from_an_identity_file_creates_it_and_uses_its_peer_id(
    authority: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from libp2p.peer.id import ID

    from adapters.p2p_identity import load_or_create_identity

    key, _ = authority
    identity = tmp_path / "data" / "identity.key"
    code, out, err = run(capsys, "issue", "--key", str(key), "--identity", str(identity))
    assert code == 0, err
    assert identity.exists() and "created identity key" in err
    expected = ID.from_pubkey(load_or_create_identity(identity).public_key).to_base58()
    assert parse_certificate(out).peer_id == expected
    # A second time the existing identity is used, not replaced.
    code, out, err = run(capsys, "issue", "--key", str(key), "--identity", str(identity))
    assert code == 0 and "created" not in err
    assert parse_certificate(out).peer_id == expected


def test_show_without_keys_and_with_the_wrong_or_an_expired_one(
    authority: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, public = authority
    seed = parse_private_key(key.read_text())
    expired = tmp_path / "expired.cert"
    expired.write_text(format_certificate(sign_certificate(seed, PEER, 1_700_000_000_000)))
    code, out, _ = run(capsys, "show", str(expired))
    assert code == 0
    assert "2023-11-14T22:13:20Z (expired " in out and "verifies" not in out
    code, out, _ = run(capsys, "show", str(expired), "--authority-key", public)
    assert code == 1 and "verifies:   no (expired)" in out

    fresh = tmp_path / "fresh.cert"
    later = int(time.time() * 1000) + 60_000
    fresh.write_text(format_certificate(sign_certificate(bytes(32), PEER, later)))
    other = "A" * 43 + "="
    code, out, _ = run(capsys, "show", str(fresh), "--authority-key", f"{public},{other}")
    assert code == 1 and "verifies:   no (bad_certificate)" in out


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("not json", "not valid JSON"),
        (None, "cannot read certificate"),
    ],
)
def test_show_refuses_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str | None, message: str
) -> None:
    path = tmp_path / "x.cert"
    if setup is not None:
        path.write_text(setup)
    code, out, err = run(capsys, "show", str(path))
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_show_refuses_a_malformed_authority_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.cert"
    path.write_text(format_certificate(sign_certificate(bytes(32), PEER, 1_700_000_000_000)))
    code, _, err = run(capsys, "show", str(path), "--authority-key", "short")
    assert code == 2 and "--authority-key: authority key is not base64" in err


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
@pytest.mark.parametrize("command", ["pubkey", "issue"])
def test_refuses_a_key_file_others_can_reach(
    authority: tuple[Path, str], capsys: pytest.CaptureFixture[str], mode: int, command: str
) -> None:
    key, _ = authority
    key.chmod(mode)
    extra = ["--peer", PEER] if command == "issue" else []
    code, out, err = run(capsys, command, "--key", str(key), *extra)
    assert code == 2 and out == ""
    assert f"has mode {mode:04o}" in err and "chmod 600" in err and err.count("\n") == 1


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_accepts_owner_only_modes(
    authority: tuple[Path, str], capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    key, public = authority
    key.chmod(mode)
    assert run(capsys, "pubkey", "--key", str(key))[:2] == (0, public + "\n")


def test_refuses_a_file_that_is_not_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "identity.key"
    key.write_bytes(b"\x08\x01\x12\x40" + bytes(64))  # a libp2p identity, not ours
    key.chmod(0o600)
    code, _, err = run(capsys, "pubkey", "--key", str(key))
    assert code == 2 and "is not an authority private key file" in err


@pytest.mark.parametrize("valid", ["30", "0d", "-1d", "1w", "1.5h", "", "d", "12 h", "٣d"])
def test_bad_validity(
    authority: tuple[Path, str], capsys: pytest.CaptureFixture[str], valid: str
) -> None:
    key, _ = authority
    # --valid=X, so that "-1d" is a value rather than an option to argparse.
    code, out, err = run(capsys, "issue", "--key", str(key), "--peer", PEER, f"--valid={valid}")
    assert code == 2 and out == ""
    assert "is not a duration like 90s, 15m, 12h or 30d" in err and err.count("\n") == 1


def test_validity_beyond_year_9999(
    authority: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = authority
    code, _, err = run(capsys, "issue", "--key", str(key), "--peer", PEER, "--valid", "9999999d")
    assert code == 2 and "cannot issue" in err


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: COMMAND"),
        (["frobnicate"], "invalid choice"),
        (["issue", "--key", "k"], "one of the arguments --peer --identity is required"),
        (["issue", "--key", "k", "--peer", PEER, "--identity", "i"], "not allowed with"),
        (["pubkey"], "required: --key"),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_bad_peer_id(authority: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    key, _ = authority
    code, _, err = run(capsys, "issue", "--key", str(key), "--peer", PEER[:-2])
    assert code == 2 and "is not a libp2p peer ID" in err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("chorus-authority")
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert "init" in result.stdout and "issue" in result.stdout


def test_issue_reads_the_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = os.urandom(32)
    monkeypatch.setenv("TEST_AUTHORITY_KEY", format_private_key(seed))
    out = tmp_path / "node.cert"
    peer = PEER
    code = main(
        ["issue", "--key-from-env", "TEST_AUTHORITY_KEY", "--peer", peer, "--out", str(out)]
    )
    assert code == 0
    cert = parse_certificate(out.read_text())
    assert AdmissionPolicy(authority_keys=(authority_public_key(seed),)).admits(
        peer, cert, time.time()
    )
    monkeypatch.setenv("TEST_AUTHORITY_KEY", "not a key")
    assert main(["issue", "--key-from-env", "TEST_AUTHORITY_KEY", "--peer", peer]) == 2
    assert "not a key" not in capsys.readouterr().err  # a secret is never echoed
