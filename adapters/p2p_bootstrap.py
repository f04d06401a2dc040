"""Bootstrap: dial the configured peers, bounded, then keep re-dialling those that drop.

Every peer gets at most ``bootstrap_max_attempts`` dials with doubling delays, all within
``bootstrap_deadline``; afterwards a bootstrap peer we are not connected to is dialled
again on a backoff of its own, since nothing else in py-libp2p re-dials a peer that comes
back (see ``P2PConfig.redial_interval``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from libp2p.kad_dht.kad_dht import KadDHT

from adapters.p2p_config import P2PConfig, P2PError, parse_peer_addr

__all__ = ["Bootstrapper"]

# The libp2p edge logs under one name, whichever part of it speaks.
logger = logging.getLogger("adapters.libp2p_host")


class Bootstrapper:
    """Runs one node's bootstrap (:meth:`run`) with the node's own dial.

    ``done`` is set once every bootstrap address has been dialled or given up on; then
    ``results`` maps each address to the peer id reached, or None.
    """

    def __init__(
        self,
        cfg: P2PConfig,
        kad: KadDHT,
        *,
        connect: Callable[[str], Awaitable[str]],
        connected_peers: Callable[[], list[str]],
    ) -> None:
        self.cfg = cfg
        self.kad = kad
        self.connect = connect
        self.connected_peers = connected_peers
        self.done = trio.Event()
        self.results: dict[str, str | None] = {}

    async def run(self) -> None:
        """Bootstrap, set ``done``, then re-dial dropped bootstrap peers until cancelled."""
        try:
            with trio.move_on_after(self.cfg.bootstrap_deadline) as scope:
                async with trio.open_nursery() as nursery:
                    for addr in self.cfg.bootstrap:
                        nursery.start_soon(self._bootstrap_one, addr)
            if scope.cancelled_caught:
                logger.warning("bootstrap deadline of %.1fs passed", self.cfg.bootstrap_deadline)
            reached = [a for a, pid in self.results.items() if pid is not None]
            if self.cfg.bootstrap:
                logger.info(
                    "bootstrap: reached %d of %d peers", len(reached), len(self.cfg.bootstrap)
                )
            if reached:
                # Learn the bootstrap peers' neighbours, and tell them about us: they add
                # a peer to their table when it sends them a DHT request.
                with trio.move_on_after(self.cfg.bootstrap_deadline):
                    await self.kad.refresh_routing_table()
        finally:
            for addr in self.cfg.bootstrap:
                self.results.setdefault(addr, None)
            self.done.set()
        await self._keep_bootstrap_peers()

    async def _keep_bootstrap_peers(self) -> None:
        """Re-dial bootstrap peers that dropped, one dial per peer per backoff period."""
        backoff = dict.fromkeys(self.cfg.bootstrap, self.cfg.redial_interval)
        due = {addr: trio.current_time() + self.cfg.redial_interval for addr in backoff}
        while backoff:
            await trio.sleep_until(min(due.values()))
            connected = set(self.connected_peers())
            for addr in backoff:
                if due[addr] > trio.current_time():
                    continue
                if parse_peer_addr(addr, "bootstrap address").peer_id.to_base58() in connected:
                    backoff[addr] = self.cfg.redial_interval
                else:
                    try:
                        await self.connect(addr)
                    except P2PError as exc:
                        logger.debug("re-dial of %s failed: %s", addr, exc.__cause__ or exc)
                        backoff[addr] = min(backoff[addr] * 2, self.cfg.redial_max_backoff)
                    else:
                        logger.info("reconnected to bootstrap peer %s", addr)
                        backoff[addr] = self.cfg.redial_interval
                due[addr] = trio.current_time() + backoff[addr]

    async def _bootstrap_one(self, addr: str) -> None:
        delay = self.cfg.bootstrap_initial_backoff
        for attempt in range(1, self.cfg.bootstrap_max_attempts + 1):
            try:
                peer_id = await self.connect(addr)
            except P2PError as exc:
                logger.info(
                    "bootstrap dial %d/%d to %s failed: %s",
                    attempt,
                    self.cfg.bootstrap_max_attempts,
                    addr,
                    exc.__cause__ or exc,
                )
            else:
                logger.info("bootstrap: connected to %s", addr)
                self.results[addr] = peer_id
                return
            if attempt < self.cfg.bootstrap_max_attempts:
                await trio.sleep(delay)
                delay = min(delay * 2, self.cfg.bootstrap_max_backoff)
        logger.warning(
            "bootstrap: gave up on %s after %d attempts", addr, self.cfg.bootstrap_max_attempts
        )
        self.results[addr] = None
