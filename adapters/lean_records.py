"""Signed peer records kept out of the messages that do not need them.

py-libp2p 0.8.1 attaches the sender's signed peer record (its addresses in an Ed25519-signed
envelope, about 250 bytes) to every GossipSub RPC it writes, including every copy of every
message it forwards, and every Kademlia answer lists each closer peer with that peer's
record as well. On an idle 10-node production devnet that was about a fifth of a node's
bytes (``devnet/cost_breakdown.py --instrument``, 2026-12-03): a forwarded 650-byte digest
went out as about 900 bytes, and a Kademlia GET_VALUE answer as about 3 KB.

Neither carries anything our nodes use. A pubsub RPC arrives on a connection the receiver
already has, whose addresses identify exchanged (with the same signed record) when it
opened; go-libp2p's pubsub has no such field at all. A Kademlia answer still lists every
closer peer with its plain ``addrs``, which is what py-libp2p's lookups dial; a peer
without a record is taken as before (``kad_dht.utils.maybe_consume_signed_record`` accepts
a message that has none). A receiver of an older build of ours sees an RPC without a
record, which it has always accepted.

- :func:`without_sender_record` is what :class:`adapters.guarded_pubsub.GuardedPubsub`
  applies to each RPC as it writes it.
- :class:`LeanKadDHT` answers with closer peers' ids and addresses only, GET_VALUE and
  GET_PROVIDERS without our own record, and a GET_VALUE that finds the record without
  closer peers: a found probe record went out as about 1.3 KB, and about 300 bytes
  without them (``devnet/cost_breakdown.py --instrument``, 2026-12-05).
- :func:`key_in_id`: whether our own messages may leave out their public key. py-libp2p
  puts the author's serialized public key (38 bytes) in every message it publishes, though
  an Ed25519 peer id embeds that key and every reader (py-libp2p's ``signature_validator``,
  go-libp2p, ``adapters.envelope``) takes it from the id first; the libp2p pubsub spec
  lets the author leave it out then, and go-libp2p does. Each copy of each digest and
  probe carried it.

What stays: Kademlia's requests and its FIND_NODE and PUT_VALUE answers still carry the
sender's record (set inline in py-libp2p's handlers, out of reach without copying them),
and identify still sends one per connection.
"""

from __future__ import annotations

from typing import Any

from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

__all__ = ["LeanKadDHT", "key_in_id", "without_sender_record"]


def key_in_id(peer_id: ID) -> bool:
    """Whether ``peer_id`` embeds its public key (an identity multihash, as Ed25519 ids)."""
    try:
        return peer_id.extract_public_key() is not None
    except Exception:
        return False


def without_sender_record(rpc: rpc_pb2.RPC) -> rpc_pb2.RPC:
    """``rpc`` with its ``senderRecord`` cleared (in place: py-libp2p builds a fresh RPC
    for each send or batch, and nothing reads the record back once it is written)."""
    if rpc.HasField("senderRecord"):
        rpc.ClearField("senderRecord")
    return rpc


# The answers whose sender record py-libp2p sets before it adds closer peers (FIND_NODE's
# comes after, out of reach).
_SENDER_RECORD_FIRST = (Message.MessageType.GET_VALUE, Message.MessageType.GET_PROVIDERS)


class LeanKadDHT(KadDHT):
    """A KadDHT whose answers list closer peers without their signed peer records; a
    GET_VALUE or GET_PROVIDERS answer also goes without ours, and a GET_VALUE answer that
    carries the record without closer peers."""

    def _add_closer_peers_to_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        if response.type in _SENDER_RECORD_FIRST and response.HasField("senderRecord"):
            response.ClearField("senderRecord")
        if response.type == Message.MessageType.GET_VALUE and response.HasField("record"):
            # The asker has what it came for. Our nodes read a record from one peer at a
            # time (``adapters.dht.LibP2PDHT.get_from_peer``); a lookup that wants more
            # copies still hears of closer peers from the peers without one.
            return
        super()._add_closer_peers_to_response(response, *args, **kwargs)
        for peer in response.closerPeers:
            if peer.HasField("signedRecord"):
                peer.ClearField("signedRecord")
