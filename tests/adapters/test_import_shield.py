"""adapters/import_shield.py: libp2p's unused libraries stay out of a node's process."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adapters import import_shield
from adapters.import_shield import FeatureUnavailable

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_shielded_process_runs_libp2p_without_the_unused_libraries() -> None:
    out = _run(
        """
        import sys
        from adapters import import_shield
        print(",".join(import_shield.shield()))
        import adapters.node
        import libp2p
        print(all(getattr(sys.modules[p], "__file__", None) is None
                  for p in import_shield.SHIELDED))
        import zeroconf
        try:
            zeroconf.Zeroconf()
        except import_shield.FeatureUnavailable as exc:
            print(exc)
        """
    )
    shielded, standins, error = out.splitlines()
    assert shielded == "aioquic,httpx,requests,zeroconf"
    assert standins == "True"
    assert error.startswith("zeroconf.Zeroconf is not loaded in a chorus-health node")


def test_the_node_command_shields_before_it_imports_libp2p() -> None:
    # adapters.cli imports libp2p only to run a node, and shields first.
    out = _run(
        """
        import sys
        import adapters.cli
        print("libp2p" in sys.modules, "zeroconf" in sys.modules)
        """
    )
    assert out.split() == ["False", "False"]
    source = (ROOT / "adapters" / "cli.py").read_text()
    run_node = source[source.index("def _run_node") :]
    assert run_node.index("import_shield.shield()") < run_node.index("trio.run(")


def test_it_does_nothing_once_libp2p_is_loaded() -> None:
    import libp2p  # noqa: F401

    assert import_shield.shield() == ()


def test_a_library_imported_before_is_left_alone() -> None:
    out = _run(
        """
        import requests
        from adapters import import_shield
        print(",".join(import_shield.shield()))
        import libp2p, requests
        print(requests.__file__ is not None)
        """
    )
    assert out.split() == ["aioquic,httpx,zeroconf", "True"]


def test_placeholders_subclass_name_exceptions_and_refuse_to_run() -> None:
    finder = import_shield._Finder(frozenset({"chorus_no_such_lib"}))
    spec = finder.find_spec("chorus_no_such_lib.sub", None)
    assert spec is not None
    module = finder.create_module(spec)
    listener = module.ServiceListener

    class Listener(listener):  # type: ignore[misc, valid-type]
        pass

    try:
        raise ValueError("real")
    except (module.SomeError, ValueError) as exc:  # an except clause naming one works
        assert str(exc) == "real"
    named = re.escape("chorus_no_such_lib.sub.ServiceListener")
    with pytest.raises(FeatureUnavailable, match=named):
        listener()
    with pytest.raises(FeatureUnavailable):
        Listener()
    with pytest.raises(FeatureUnavailable, match=r"sub\.Enum\.MEMBER"):
        module.Enum.MEMBER()
    with pytest.raises(AttributeError):
        _ = module.__wrapped__
    assert finder.find_spec("json", None) is None
