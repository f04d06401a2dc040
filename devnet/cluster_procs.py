"""Process checks (re-exported by :mod:`devnet.cluster`): what the OS says about a node's
process, checked against the start time recorded with its pid (pids get reused), and the
parent-death signal of the nodes ``up`` starts.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import psutil  # type: ignore[import-untyped]  # ships no py.typed; types-psutil is not a dependency

from devnet.cluster_settings import PR_SET_PDEATHSIG
from devnet.cluster_state import NodeRecord


class Proc(StrEnum):
    """What the OS says about a node's process."""

    RUNNING = "running"
    FROZEN = "frozen"  # SIGSTOPped
    EXITED = "exited"  # gone, or a zombie waiting to be reaped


def process_of(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The live process with this pid and start time, or None."""
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        if create_time is not None and abs(_since_boot(process) - create_time) > 0.5:
            return None  # the pid was reused by another program
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return None
    except psutil.Error:
        return None
    return process


def proc_state(rec: NodeRecord) -> Proc:
    process = process_of(rec.pid, rec.create_time)
    if process is None:
        return Proc.EXITED
    try:
        status = process.status()
    except psutil.Error:
        return Proc.EXITED
    if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
        return Proc.FROZEN
    return Proc.RUNNING


def _since_boot(process: psutil.Process) -> float:
    # psutil's create_time adds a boot time that moves with the wall clock (NTP steps):
    # the start in seconds since boot is what stays the process's own.
    return float(process.create_time()) - float(psutil.boot_time())


def _create_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since boot: its identity beside the pid."""
    try:
        return _since_boot(psutil.Process(pid))
    except psutil.Error:
        return None


_LIBC: Any = None


def pdeathsig_preexec() -> Callable[[], None]:
    """A preexec_fn that makes the child get SIGTERM when its parent dies (Linux)."""
    global _LIBC
    if _LIBC is None:
        # Loaded here, before fork: the child should do as little as possible.
        _LIBC = ctypes.CDLL(None, use_errno=True)
    libc, parent = _LIBC, os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: do not outlive it
            os._exit(1)

    return preexec
