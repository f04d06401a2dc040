"""adapters/record_cache.py: signed peer records are verified once per sender and bytes."""

from __future__ import annotations

from typing import Any

import pytest

from adapters import record_cache
from adapters.record_cache import cached_consumer, cached_sender


class Msg:
    """Stands in for a pubsub RPC: only ``HasField`` and ``senderRecord`` are read."""

    def __init__(self, record: bytes) -> None:
        self.senderRecord = record

    def HasField(self, name: str) -> bool:
        if name != "senderRecord":
            raise ValueError(name)
        return bool(self.senderRecord)


class Host:
    pass


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [100.0]
    monkeypatch.setattr(record_cache, "_clock", lambda: now[0])
    return now


def test_same_bytes_from_same_sender_are_verified_once(clock: list[float]) -> None:
    calls: list[tuple[bytes, Any]] = []

    def verify(msg: Msg, host: Host, peer_id: Any = None) -> bool:
        calls.append((msg.senderRecord, peer_id))
        return msg.senderRecord.startswith(b"good")

    consume = cached_consumer(verify)
    host = Host()
    assert consume(Msg(b"good-1"), host, "P")
    assert consume(Msg(b"good-1"), host, "P")
    assert len(calls) == 1
    # Other bytes, another sender, another host: verified afresh.
    assert consume(Msg(b"good-2"), host, "P")
    assert consume(Msg(b"good-1"), host, "Q")
    assert consume(Msg(b"good-1"), Host(), "P")
    assert len(calls) == 4
    # A failure is never cached.
    assert not consume(Msg(b"bad"), host, "P")
    assert not consume(Msg(b"bad"), host, "P")
    assert len(calls) == 6
    # No record: always py-libp2p's function.
    assert not consume(Msg(b""), host, "P")
    assert len(calls) == 7
    # After REVERIFY_AFTER the record is verified (and its TTL refreshed) again.
    clock[0] += record_cache.REVERIFY_AFTER
    assert consume(Msg(b"good-1"), host, "P")
    assert len(calls) == 8


def test_the_envelope_sent_is_rebuilt_after_resend_for(clock: list[float]) -> None:
    built: list[int] = []

    def build(host: Host) -> tuple[bytes, bool]:
        built.append(1)
        return b"envelope-%d" % len(built), True

    envelope = cached_sender(build)
    host = Host()
    assert envelope(host) == (b"envelope-1", True)
    assert envelope(host) == (b"envelope-1", False)
    clock[0] += record_cache.RESEND_FOR
    assert envelope(host) == (b"envelope-2", True)


def test_install_wraps_every_importer_once() -> None:
    import libp2p.kad_dht.kad_dht as kad
    import libp2p.pubsub.gossipsub as gossipsub
    import libp2p.pubsub.pubsub as pubsub

    record_cache.install()
    first = pubsub.maybe_consume_signed_record
    record_cache.install()
    assert pubsub.maybe_consume_signed_record is not first  # re-wrapped, not stacked:
    assert first.__chorus_cached__ is pubsub.maybe_consume_signed_record.__chorus_cached__
    assert gossipsub.maybe_consume_signed_record is pubsub.maybe_consume_signed_record
    assert hasattr(kad.maybe_consume_signed_record, "__chorus_cached__")
    assert hasattr(kad.env_to_send_in_RPC, "__chorus_cached__")
