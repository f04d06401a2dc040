"""Taking a node down cleanly: closing the host and the sockets under it, and sorting the
errors that leave ``open_p2p_node``.

py-libp2p 0.8.1 leaves TCP sockets open when a node is stopped by cancellation, and its
pubsub reader races the shutdown (notes, "Building a node"); both are handled here so that
``adapters.libp2p_host`` reads as the order in which a node starts and stops.
"""

from __future__ import annotations

import contextlib
import logging

import trio
from libp2p.abc import IHost

from adapters.guarded_pubsub import without_shutdown_race
from adapters.p2p_config import P2PError

__all__ = ["close_host", "close_sockets", "tcp_sockets", "tidy_exit_error"]

# The libp2p edge logs under one name, whichever part of it speaks.
logger = logging.getLogger("adapters.libp2p_host")


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def tidy_exit_error(exc: BaseException, body_error: list[BaseException]) -> BaseException | None:
    """What should leave ``open_p2p_node``: None for only shutdown-race errors; the
    caller's own exception, or our P2PError, unwrapped from trio's nursery groups when it
    is all there is (its nurseries would otherwise turn ``raise ValueError`` in the
    ``async with`` body into an ExceptionGroup)."""
    rest = without_shutdown_race(exc)
    if rest is None:
        return None
    leaves = _leaves(rest)
    if len(leaves) == 1 and (
        isinstance(leaves[0], P2PError) or (body_error and leaves[0] is body_error[0])
    ):
        return leaves[0]
    return rest


def tcp_sockets(host: IHost) -> list[trio.SocketStream]:
    """The TCP streams under the host's connections (swarm conn -> muxer -> security ->
    raw connection -> trio stream; found by a bounded walk, not by py-libp2p's private
    attribute names)."""
    found: list[trio.SocketStream] = []
    seen: set[int] = set()
    todo: list[tuple[object, int]] = [
        (conn, 0) for conns in host.get_network().connections.values() for conn in conns
    ]
    while todo:
        obj, depth = todo.pop()
        if id(obj) in seen or depth > 6:
            continue
        seen.add(id(obj))
        if isinstance(obj, trio.SocketStream):
            found.append(obj)
            continue
        for name in ("muxed_conn", "secured_conn", "conn", "read_writer", "stream", "_stream"):
            child = getattr(obj, name, None)
            if child is not None:
                todo.append((child, depth + 1))
    return found


def close_sockets(sockets: list[trio.SocketStream]) -> None:
    # host.close() closes every connection, but when the node is stopped by cancellation
    # some TCP sockets stayed open (py-libp2p 0.8.1; seen in-process, 2026-11-28): the peer
    # never saw a disconnect, and a restarted node with the same id could not replace the
    # stale connection. Closing the socket itself is what a process exit would do.
    for stream in sockets:
        with contextlib.suppress(OSError):
            if stream.socket.fileno() != -1:
                stream.socket.close()


async def close_host(host: IHost, grace: float) -> None:
    # Shielded: this runs while the surrounding scope may already be cancelled.
    with trio.CancelScope(shield=True), trio.move_on_after(grace) as scope:
        await host.close()
    if scope.cancelled_caught:
        logger.warning("host.close() did not finish within %.1fs", grace)
