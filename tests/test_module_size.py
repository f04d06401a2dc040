"""No module of ours grows past 400 lines (issue 16): one concern each, small enough for
one person to hold in mind. Generated code (protoc's ``*_pb2.py``) is exempt."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mesh", "probes", "adapters", "devnet")
LIMIT = 400


def oversized() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name.endswith("_pb2.py"):
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > LIMIT:
                found.append(f"{path.relative_to(ROOT)}: {lines} lines")
    return found


def test_no_module_is_over_400_lines() -> None:
    assert oversized() == []


def test_the_check_sees_an_oversized_module(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    package = tmp_path / "mesh"
    package.mkdir()
    (package / "big.py").write_text("x = 1\n" * (LIMIT + 1))
    (package / "digest_pb2.py").write_text("x = 1\n" * (LIMIT + 1))
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGES", ("mesh",))
    assert oversized() == [f"mesh/big.py: {LIMIT + 1} lines"]
