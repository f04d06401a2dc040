"""adapters/lean_records.py: no signed peer record rides on pubsub RPCs or Kademlia's
closer peers, on real py-libp2p nodes; delivery and lookups work as before."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils.varint import encode_varint_prefixed, read_varint_prefixed_bytes

from adapters.lean_records import key_in_id, without_sender_record
from adapters.libp2p_host import open_p2p_node
from adapters.p2p_config import P2PConfig
from probes.ports import PubSubMessage
from tests.adapters import WaitUntil, in_mesh

MakeConfig = Callable[..., P2PConfig]


def test_without_sender_record_keeps_everything_else() -> None:
    msg = rpc_pb2.Message(data=b"digest", topicIDs=["t"], seqno=b"12345678")
    rpc = rpc_pb2.RPC(publish=[msg], senderRecord=b"signed envelope")
    out = without_sender_record(rpc)
    assert not out.HasField("senderRecord")
    assert list(out.publish) == [msg]
    assert without_sender_record(rpc_pb2.RPC()) == rpc_pb2.RPC()


@pytest.mark.network
async def test_pubsub_rpcs_arrive_without_the_senders_record(
    p2p_config: MakeConfig, wait_until: WaitUntil, monkeypatch: pytest.MonkeyPatch
) -> None:
    import libp2p.pubsub.pubsub as pubsub_module

    async with (
        open_p2p_node(p2p_config("a")) as a,
        open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b,
    ):
        # Every RPC b reads goes through this call first (Pubsub.continuously_read_stream),
        # with or without a record.
        seen: list[tuple[str, bool, bool]] = []
        keys: list[bytes] = []
        consume = pubsub_module.maybe_consume_signed_record

        def spy(rpc: Any, host: Any, peer_id: Any) -> bool:
            seen.append((str(peer_id), rpc.HasField("senderRecord"), bool(rpc.publish)))
            keys.extend(msg.key for msg in rpc.publish)
            return bool(consume(rpc, host, peer_id))

        monkeypatch.setattr(pubsub_module, "maybe_consume_signed_record", spy)
        got: list[bytes] = []

        async def inbox(msg: PubSubMessage) -> None:
            got.append(msg.data)

        await a.pubsub.subscribe("t", inbox)
        await b.pubsub.subscribe("t", inbox)
        await wait_until(lambda: in_mesh(a, b, "t"), what="b in a's mesh")
        await a.pubsub.publish("t", b"from a")
        await wait_until(lambda: got.count(b"from a") == 2, what="delivered at a and b")
        from_a = [(record, publish) for peer, record, publish in seen if peer == a.peer_id]
        assert (False, True) in from_a  # the publish itself was read by b
        assert not any(record for record, _ in from_a)
        # Nor its public key: b took it from a's Ed25519 id and verified the signature
        # (strict signing: b delivered it).
        assert keys and not any(keys)


def test_ed25519_ids_embed_their_key_and_others_do_not() -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair

    assert key_in_id(ID.from_pubkey(create_new_key_pair().public_key))
    assert not key_in_id(ID(b"\x12\x20" + bytes(32)))  # a sha256 multihash


@contextlib.asynccontextmanager
async def _star(p2p_config: MakeConfig, wait_until: WaitUntil) -> AsyncIterator[tuple[Any, ...]]:
    """Nodes a, b and c, b and c bootstrapped from a, c in a's routing table."""
    async with (
        open_p2p_node(p2p_config("a")) as a,
        open_p2p_node(p2p_config("b", bootstrap=(a.listen_addrs[0],))) as b,
        open_p2p_node(p2p_config("c", bootstrap=(a.listen_addrs[0],))) as c,
    ):
        await wait_until(
            lambda: c.host.get_id() in a.kad.routing_table.get_peer_ids(),
            what="c in a's routing table",
        )
        yield a, b, c


async def _ask(asker: Any, answerer: Any, request: Message) -> tuple[Message, int]:
    """``request`` sent straight to ``answerer``, as a lookup does: its answer and size."""
    stream = await asker.host.new_stream(answerer.host.get_id(), [TProtocol(KAD_PROTOCOL_ID)])
    try:
        await stream.write(encode_varint_prefixed(request.SerializeToString()))
        with trio.fail_after(10):
            raw = await read_varint_prefixed_bytes(stream)
    finally:
        await stream.close()
    return Message.FromString(raw), len(raw)


@pytest.mark.network
async def test_kademlia_answers_list_closer_peers_with_addresses_only(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with _star(p2p_config, wait_until) as (a, b, c):
        # b asks a directly, as a lookup does; a's answer must still name c, reachable.
        request = Message(type=Message.MessageType.FIND_NODE, key=c.host.get_id().to_bytes())
        answer, _ = await _ask(b, a, request)
        listed = {ID(peer.id): peer for peer in answer.closerPeers}
        assert c.host.get_id() in listed
        assert all(peer.addrs for peer in listed.values())
        assert not any(peer.HasField("signedRecord") for peer in listed.values())


@pytest.mark.network
async def test_a_found_record_comes_alone_and_a_miss_still_names_closer_peers(
    p2p_config: MakeConfig, wait_until: WaitUntil
) -> None:
    async with _star(p2p_config, wait_until) as (a, b, c):
        key = b"/chorus-health/" + b"0" * 32
        assert await b.kad.value_store._store_at_peer(a.host.get_id(), key, b"v" * 64)
        found, size = await _ask(b, a, Message(type=Message.MessageType.GET_VALUE, key=key))
        assert found.record.value == b"v" * 64
        assert not found.closerPeers
        assert not found.HasField("senderRecord")
        assert size < 400  # about 1.3 KB with both (devnet/cost_breakdown.py, 2026-12-05)
        # A miss is what a lookup goes on from: it still names c, reachable.
        missing = Message(type=Message.MessageType.GET_VALUE, key=b"/chorus-health/" + b"1" * 32)
        miss, _ = await _ask(b, a, missing)
        assert not miss.HasField("record")
        assert c.host.get_id() in {ID(peer.id) for peer in miss.closerPeers}
        assert not miss.HasField("senderRecord")
        # The library's iterative get still finds the record through them.
        assert await c.kad.get_value(key.decode()) == b"v" * 64
