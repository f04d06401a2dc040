"""The node as a process: exit codes, the signals that stop it and the watchdog that ends
it when a clean stop never comes."""

from __future__ import annotations

import logging
import os
import signal
import threading

import trio

from mesh.shutdown import ShutdownManager, ShutdownReport

__all__ = [
    "EXIT_CLEAN",
    "EXIT_CONFIG",
    "EXIT_CRITICAL",
    "EXIT_FORCED",
    "exit_code",
    "start_watchdog",
    "watch_signals",
]

# The node runner logs under one name, whichever part of it speaks.
log = logging.getLogger("adapters.node")

# Exit codes of the process (documented in the README).
EXIT_CLEAN = 0
EXIT_FORCED = 1
EXIT_CONFIG = 2
EXIT_CRITICAL = 3


def exit_code(report: ShutdownReport) -> int:
    if report.forced:
        return EXIT_FORCED
    return EXIT_CRITICAL if report.failure else EXIT_CLEAN


async def watch_signals(shutdown: ShutdownManager) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not shutdown.request(f"received {name}"):
                # A second signal means the operator will not wait: leave now.
                log.error("second %s during shutdown; exiting at once", name)
                os._exit(EXIT_FORCED)


def start_watchdog(seconds: float) -> None:
    """Backstop for shutdown: code that blocks the event loop itself would stop trio's own
    timeout from firing, so a plain thread ends the process if the loop never finishes."""

    def expire() -> None:
        log.critical("shutdown still running after %.0fs; forcing exit", seconds)
        os._exit(EXIT_FORCED)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
