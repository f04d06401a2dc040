"""Which advertised address a dial-back may go to: pure checks on multiaddr text.

A digest's ``p2p_addrs`` are the member's own words. They may aim our dial only at the
member itself: at the IP its authenticated connection to us came from, or, for a member an
admission authority certified, at a unicast IP it names (``dialable_ip``). Never at an
unspecified, multicast, broadcast, reserved or link-local address, and at a loopback one
only when every node is on this host (a devnet): elsewhere 127.0.0.1 is our own host, and
a refusal there would say nothing of the member.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

__all__ = ["MAX_ADVERTISED", "advertised_at", "dialable_ip", "is_loopback"]

MAX_ADVERTISED = 8  # of a member's advertised addresses, the most we look at


def advertised_at(
    peer: str, advertised: Sequence[str], allowed: Callable[[str], bool]
) -> tuple[str, int] | None:
    """The first of ``advertised`` that is ``/ip4|ip6/<ip>/tcp/<port>/p2p/<peer>`` with
    ``allowed(ip)``, as (ip, port); None if none is."""
    for addr in advertised[:MAX_ADVERTISED]:
        parts = addr.split("/")
        # ['', 'ip4', ip, 'tcp', port, 'p2p', peer]
        if len(parts) != 7 or parts[1] not in ("ip4", "ip6"):
            continue
        if parts[3] != "tcp" or parts[5] != "p2p" or parts[6] != peer:
            continue
        port = parts[4]
        # isdigit alone takes "²", which int() refuses.
        if port.isascii() and port.isdigit() and 0 < int(port) < 65536 and allowed(parts[2]):
            return parts[2], int(port)
    return None


def _parse(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def is_loopback(ip: str) -> bool:
    parsed = _parse(ip)
    return parsed is not None and parsed.is_loopback


def dialable_ip(ip: str, *, loopback: bool) -> bool:
    """A unicast address a dial can only reach one host at (``loopback``: 127.0.0.0/8 and
    ::1 too)."""
    parsed = _parse(ip)
    if parsed is None:
        return False
    if parsed.is_loopback:
        return loopback
    # is_reserved covers 240.0.0.0/4, broadcast included.
    return not (
        parsed.is_unspecified or parsed.is_multicast or parsed.is_reserved or parsed.is_link_local
    )
