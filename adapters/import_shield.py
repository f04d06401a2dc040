"""Keep the py-libp2p features a node never uses out of its memory.

py-libp2p 0.8.1's package ``__init__`` imports every transport and service it ships,
used or not: the QUIC transport (aioquic), AutoTLS's ACME client (requests, httpx, and
through httpx's command line rich and pygments) and mDNS discovery (zeroconf). A node
runs Noise and Yamux over TCP and finds its peers through ``--bootstrap-peers``, yet
those imports were 13 of the 97 MiB a node held before it did any work (the idle-cost
goal of issue 13 is 95 MiB in all).

:func:`shield` registers a stand-in for each of those packages before libp2p is first
imported. Any attribute of a stand-in is a placeholder class, so libp2p's module-level
``from zeroconf import ServiceInfo`` and ``class Foo(QuicConnectionProtocol)`` still
succeed; calling or instantiating one raises :class:`FeatureUnavailable` naming what
was asked for, so a use we did not foresee fails loudly rather than quietly. The
placeholders derive from ``Exception`` because libp2p names some of them in ``except``
clauses, where Python insists on exception classes; nothing ever raises them.

Only the node's own process calls it (``adapters/cli.py``): an application that imports
our toolkit keeps its real requests and httpx.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import types
from collections.abc import Sequence

__all__ = ["SHIELDED", "FeatureUnavailable", "shield"]

logger = logging.getLogger(__name__)

# Imported by libp2p only for QUIC, AutoTLS and mDNS, none of which a node enables.
SHIELDED: tuple[str, ...] = ("aioquic", "httpx", "requests", "zeroconf")


class FeatureUnavailable(RuntimeError):
    """Code reached a py-libp2p feature whose library a node does not load."""


class _Placeholder(type):
    def __getattr__(cls, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__qualname__}.{name}", cls.__module__)

    def __call__(cls, *args: object, **kwargs: object) -> object:
        raise FeatureUnavailable(
            f"{cls.__module__}.{cls.__qualname__} is not loaded in a chorus-health node"
            " (adapters/import_shield.py)"
        )


def _placeholder(qualname: str, module: str) -> type:
    name = qualname.rpartition(".")[2]
    cls = _Placeholder(name, (Exception,), {"__module__": module, "__qualname__": qualname})
    return cls


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(name, self.__name__)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, packages: frozenset[str]) -> None:
        self._packages = packages

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in self._packages:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StandIn(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def shield(packages: Sequence[str] = SHIELDED) -> tuple[str, ...]:
    """Stand in for ``packages`` in this process; returns the ones it shielded.

    Does nothing once libp2p is imported (it holds the real modules by then), and leaves
    alone any package already imported by someone else."""
    if "libp2p" in sys.modules:
        return ()
    chosen = frozenset(p for p in packages if p not in sys.modules)
    if chosen:
        sys.meta_path.insert(0, _Finder(chosen))
        logger.debug("not loading %s: py-libp2p features a node does not use", sorted(chosen))
    return tuple(sorted(chosen))
