from __future__ import annotations

from pathlib import Path

import pytest

from mesh.config import NodeConfig
from mesh.config_options import OPTIONS
from mesh.config_sources import load_config
from mesh.errors import ConfigError


def test_defaults_match_chorus_ports() -> None:
    config = load_config({}, environ={})
    assert config == NodeConfig()
    assert (config.health_port, config.p2p_port, config.fail_after) == (8081, 9000, 3)


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('health_port = 7000\np2p_port = 7001\nlog_format = "json"\n')
    environ = {"CHORUS_HEALTH_PORT": "7100", "CHORUS_BOOTSTRAP_PEERS": "/ip4/1, /ip4/2,"}
    config = load_config({"health_port": "7200"}, environ=environ, config_file=str(path))
    assert config.health_port == 7200
    assert config.p2p_port == 7001
    assert config.log_format == "json"
    assert config.bootstrap_peers == ("/ip4/1", "/ip4/2")


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        'disk_threshold = 0.5\nshutdown_on_critical = false\nbootstrap_peers = ["/ip4/a"]\n'
    )
    config = load_config({}, environ={"CHORUS_CONFIG": str(path)})
    assert config.disk_threshold == 0.5
    assert config.shutdown_on_critical is False
    assert config.bootstrap_peers == ("/ip4/a",)


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({"health_port": "70000"}, {}, "invalid flag --health-port: 70000 is not a TCP port"),
        ({"health_port": "eighty"}, {}, "invalid flag --health-port: expected an integer"),
        ({}, {"CHORUS_P2P_PORT": "-1"}, "invalid environment variable CHORUS_P2P_PORT"),
        ({"disk_threshold": "1.5"}, {}, "must be a fraction in (0, 1]"),
        ({"disk_threshold": "nan"}, {}, "expected a finite number, got 'nan'"),
        ({"fail_after": "0"}, {}, "must be at least 1"),
        ({"log_format": "xml"}, {}, "must be one of text, json"),
        ({}, {"CHORUS_SHUTDOWN_ON_CRITICAL": "maybe"}, "expected true or false"),
        ({"shutdown_timeout": "-3"}, {}, "must be a positive number"),
        (
            {"election_probe_interval": "0"},
            {},
            "invalid flag --election-probe-interval: must be a positive number",
        ),
        (
            {},
            {"CHORUS_ELECTION_PROBE_TIMEOUT": "soon"},
            "invalid environment variable CHORUS_ELECTION_PROBE_TIMEOUT: expected a number",
        ),
        ({"election_probe_timeout": "inf"}, {}, "expected a finite number"),
        (
            {},
            {"CHORUS_ENABLE_ELECTION_PROBES": "perhaps"},
            "CHORUS_ENABLE_ELECTION_PROBES: expected true or false",
        ),
    ],
)
def test_invalid_values_name_option_and_source(
    flags: dict[str, object], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(flags, environ=environ)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_election_settings_default_to_the_reference(tmp_path: Path) -> None:
    config = load_config({}, environ={})
    # None: the reference's 15 s (or --probe-interval); see
    # adapters.node_settings.health_config_for.
    assert config.election_probe_interval is None
    assert (config.election_probe_timeout, config.enable_election_probes) == (5.0, True)
    path = tmp_path / "node.toml"
    path.write_text("election_probe_interval = 30\nenable_election_probes = false\n")
    environ = {"CHORUS_ELECTION_PROBE_TIMEOUT": "2.5"}
    config = load_config({}, environ=environ, config_file=str(path))
    assert config.election_probe_interval == 30.0
    assert (config.election_probe_timeout, config.enable_election_probes) == (2.5, False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("health_port = ", "is not valid TOML"),
        ("enable_election_probes = 1", "enable_election_probes in"),
        ("election_probe_timeout = -5", "must be a positive number"),
        ("helth_port = 1", "unknown option(s) helth_port"),
        ("health_port = true", "health_port in"),
        ("health_port = 1.5", "expected an integer"),
        ("bootstrap_peers = [1, 2]", "expected a list of strings"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config({}, environ={}, config_file=str(path))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({}, environ={}, config_file=str(tmp_path / "none.toml"))


def test_every_option_has_a_flag_and_env() -> None:
    assert {o.env for o in OPTIONS} >= {
        "CHORUS_HEALTH_PORT",
        "CHORUS_P2P_PORT",
        "CHORUS_BOOTSTRAP_PEERS",
        "CHORUS_HEALTH_TOKEN",
    }
    assert all(o.flag.startswith("--") and "_" not in o.flag for o in OPTIONS)


# --- admission (mesh/admission.py) -------------------------------------------------------

ED25519_PEER = "12D3KooWCWxcJ9S1BtZMSkEjY98kfN8W7CKNAiHvY2UPoz6qoq9F"
RSA_PEER = "QmcCobrPtjuh2BUvEJJn3Xae36xRfRFH3y5fTPuVv7g5eV"
KEY_1 = "VTJ0o8GbWpeLZ8zWMeXoGbR6sdoMbF+UkuJskpUv2Rs="
KEY_2 = "A" * 43 + "="


def test_admission_is_off_by_default() -> None:
    from mesh.admission import policy_from_config

    config = load_config({}, environ={})
    assert (config.admit_peers, config.authority_keys, config.member_certificate) == ((), (), None)
    assert not policy_from_config(config).enabled


def test_admission_options_from_flags_environment_and_file(tmp_path: Path) -> None:
    from mesh.admission import AdmissionPolicy, policy_from_config
    from mesh.admission_formats import parse_public_key

    path = tmp_path / "node.toml"
    path.write_text(f'authority_keys = ["{KEY_1}", " {KEY_2} "]\nmember_certificate = "a.cert"\n')
    environ = {"CHORUS_ADMIT_PEERS": f" {ED25519_PEER}, {RSA_PEER},{ED25519_PEER}, "}
    config = load_config(
        {"member_certificate": "/run/chorus/member.cert"}, environ=environ, config_file=str(path)
    )
    assert config.admit_peers == (ED25519_PEER, RSA_PEER)  # repeats dropped
    assert config.authority_keys == (KEY_1, KEY_2)
    assert config.member_certificate == "/run/chorus/member.cert"
    assert policy_from_config(config) == AdmissionPolicy(
        frozenset({ED25519_PEER, RSA_PEER}), (parse_public_key(KEY_1), parse_public_key(KEY_2))
    )
    blank = load_config({}, environ={"CHORUS_MEMBER_CERTIFICATE": " ", "CHORUS_ADMIT_PEERS": ""})
    assert (blank.member_certificate, blank.admit_peers) == (None, ())


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({"admit_peers": "12D3KooWnope"}, {}, "invalid flag --admit-peers: '12D3KooWnope' is not"),
        ({"admit_peers": ED25519_PEER[:-1]}, {}, "is not a libp2p peer ID"),
        ({}, {"CHORUS_ADMIT_PEERS": "/ip4/1.2.3.4/tcp/9000"}, "CHORUS_ADMIT_PEERS"),
        (
            {},
            {"CHORUS_AUTHORITY_KEYS": f"{KEY_1},short"},
            "invalid environment variable CHORUS_AUTHORITY_KEYS: key #2: authority key is not",
        ),
        ({"authority_keys": "A" * 42 + "=="}, {}, "not base64 of 32 bytes (31 bytes)"),
        ({"authority_keys": KEY_1 + "!"}, {}, "(not base64)"),
    ],
)
def test_invalid_admission_values(
    flags: dict[str, object], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(flags, environ=environ)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_admission_flags_in_the_cli_help() -> None:
    from adapters.cli import build_parser

    text = build_parser().format_help()
    for flag in ("--admit-peers", "--authority-keys", "--member-certificate"):
        assert flag in text


def test_the_token_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")  # as a mounted secret or `echo` writes it
    config = load_config({"health_token_file": str(secret)})
    assert config.health_token == "s3cret"
    env = load_config({}, environ={"CHORUS_HEALTH_TOKEN_FILE": str(secret)})
    assert env.health_token == "s3cret"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"  \n", "is empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"x" * 5000, "over 4096 bytes"),
    ],
)
def test_a_bad_token_file_is_a_config_error(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    secret = tmp_path / "token"
    if content is not None:
        secret.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as error:
        load_config({"health_token_file": str(secret)})
    assert "--health-token-file" in str(error.value)


def test_a_token_and_a_token_file_together_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("a")
    with pytest.raises(ConfigError, match="give the token once"):
        load_config({"health_token": "b", "health_token_file": str(secret)})
