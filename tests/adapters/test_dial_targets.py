"""Which advertised address a dial-back may go to (adapters/dial_targets.py)."""

from __future__ import annotations

import pytest

from adapters.dial_targets import MAX_ADVERTISED, advertised_at, dialable_ip

PEER = "12D3KooWPeer"


@pytest.mark.parametrize(
    ("ip", "loopback", "dialable"),
    [
        ("10.0.3.7", False, True),
        ("192.0.2.1", False, True),
        ("2001:db8::5", False, True),
        ("127.0.0.1", False, False),
        ("127.0.0.1", True, True),
        ("::1", True, True),
        ("0.0.0.0", True, False),
        ("::", True, False),
        ("224.0.0.1", True, False),
        ("255.255.255.255", True, False),
        ("240.0.0.1", True, False),
        ("169.254.10.1", True, False),
        ("fe80::1", True, False),
        ("::1", False, False),
        ("::ffff:127.0.0.1", False, False),
        ("::ffff:0.0.0.0", True, False),
        ("ff02::1", True, False),
        ("example.org", True, False),
        ("", True, False),
    ],
)
def test_only_unicast_addresses_are_dialable(ip: str, loopback: bool, dialable: bool) -> None:
    assert dialable_ip(ip, loopback=loopback) is dialable


def test_the_first_well_formed_allowed_address_naming_the_peer_wins() -> None:
    addrs = [
        f"/dns4/example.org/tcp/4001/p2p/{PEER}",  # not an IP
        f"/ip4/10.0.0.1/udp/4001/p2p/{PEER}",  # not TCP
        "/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWOther",  # someone else
        f"/ip4/10.0.0.3/tcp/0/p2p/{PEER}",  # no port
        f"/ip4/10.0.0.4/tcp/70000/p2p/{PEER}",
        f"/ip4/10.0.0.4/tcp/4\u00b2/p2p/{PEER}",  # a digit to isdigit, not to int
        f"/ip4/10.0.0.5/tcp/4001/p2p/{PEER}",
        f"/ip4/10.0.0.6/tcp/4001/p2p/{PEER}",
    ]
    assert advertised_at(PEER, addrs, lambda ip: True) == ("10.0.0.5", 4001)
    assert advertised_at(PEER, addrs, lambda ip: ip == "10.0.0.6") == ("10.0.0.6", 4001)
    assert advertised_at(PEER, addrs, lambda ip: False) is None


def test_only_the_first_addresses_are_looked_at() -> None:
    filler = [f"/ip4/10.0.0.1/tcp/1/p2p/{PEER}"] * MAX_ADVERTISED
    late = f"/ip4/10.9.9.9/tcp/4001/p2p/{PEER}"
    assert advertised_at(PEER, [*filler, late], lambda ip: ip == "10.9.9.9") is None
