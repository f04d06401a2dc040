"""The node's HTTP server: hypercorn serving the quart-trio app until told to stop.

Separate from the node runner because binding needs its own error handling (hypercorn
binds inside its own nursery) and a stop signal of its own for the shutdown sequence.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from mesh.config import NodeConfig
from mesh.errors import ConfigError

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's own annotations for mypy; its
    # TaskStatus is the same protocol as trio.TaskStatus.
    from trio_typing import TaskStatus

__all__ = ["start_http"]


async def start_http(
    nursery: trio.Nursery, app: QuartTrio, config: NodeConfig
) -> tuple[int, trio.Event, trio.Event]:
    """Serve ``app`` in ``nursery`` once it is bound; return the port bound, an event set
    when the server has stopped and one to set to stop it. ConfigError if it cannot bind."""
    hc = HypercornConfig()
    hc.bind = [f"{config.health_host}:{config.health_port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 2.0
    stop, done = trio.Event(), trio.Event()

    async def serve_until_stopped(*, task_status: TaskStatus[list[str]]) -> None:
        try:
            await serve(app, hc, shutdown_trigger=stop.wait, task_status=task_status)
        finally:
            done.set()

    try:
        binds: list[str] = await nursery.start(serve_until_stopped)
    except (OSError, BaseExceptionGroup) as exc:
        # hypercorn binds inside its own nursery, so the OSError may arrive wrapped.
        bind_error = _find(exc, OSError)
        if bind_error is None:
            raise
        raise ConfigError(
            f"cannot listen on {config.health_host}:{config.health_port}:"
            f" {bind_error.strerror or bind_error}"
        ) from exc
    return int(binds[0].rsplit(":", 1)[1]), done, stop


def _find(exc: BaseException, kind: type[OSError]) -> OSError | None:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None
