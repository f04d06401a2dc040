"""Forged health statements for adversarial simulations (issue 12, "a view no stranger can
bend").

:class:`~devnet.rogue.RoguePeer` signs everything with its own key. An attacker can do
more, for free: mint as many libp2p identities as it likes and sign with each of them,
write protobuf our own encoder refuses (``encode_gossip`` checks every range), and answer
the view-pull protocol with a snapshot of its own making. This module gives a test those
powers:

* :func:`mint` and :func:`mint_many`: fresh Ed25519 identities
  (``libp2p.crypto.ed25519.create_new_key_pair``), or :meth:`Identity.of_host` for the key
  of a running host (a rogue's);
* :func:`sign`: a pubsub ``Message`` on the health topic signed exactly as py-libp2p's
  ``Pubsub.publish`` signs it (the libp2p pubsub spec: an Ed25519 signature over
  ``"libp2p-pubsub:" + Message{from, data, seqno, topicIDs}``, then ``signature`` and
  ``key`` set), optionally claiming another author so that it does not verify;
* :func:`raw_gossip`: the wire form of a digest, suspicion or leave with no range checks
  (counters up to 2**64 - 1), and :func:`digest_of` / :func:`notice_by` to build them;
* :func:`raw_snapshot` and :class:`ForgedEntry`: a ``ViewSnapshot`` built by hand, so that
  its ``digest_statement`` and ``suspicions`` can hold forged, mis-signed or foreign
  envelopes; :func:`fit_entries` says how many entries fit under the size limit;
* :class:`PullServer`: a handler of ``/chorus/health-view/1.0.0`` for the rogue's host that
  answers as our nodes do (read the request to EOF, write one snapshot, close), with
  whatever bytes the test chose, and counts who asked and for which page.

A rogue injects what it signed in others' names with ``rogue.inject(victim, message)``:
GossipSub accepts a forwarded message that carries its origin's signature, whoever
forwards it. Nothing here sends anything by itself, and every loop is bounded.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX

from adapters.stream_read import read_to_eof
from adapters.view_pull import PULL_PROTOCOL
from mesh import digest_pb2 as _pb
from mesh.digest import SCHEMA_VERSION, TOPIC, unchecked_gossip
from mesh.messages import Gossip, HealthDigest, MemberState, SuspectNotice, Version
from mesh.model import Status
from mesh.snapshot_codec import MAX_PULL_REQUEST, PULL_REQUEST, parse_pull_request
from mesh.wire_bounds import MAX_SNAPSHOT_BYTES

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream

__all__ = [
    "MAX_MINT",
    "PULL_PROTOCOL",
    "PULL_REQUEST",
    "ForgedEntry",
    "Identity",
    "PullServer",
    "digest_of",
    "fit_entries",
    "mint",
    "mint_many",
    "notice_by",
    "now_ms",
    "raw_gossip",
    "raw_snapshot",
    "sign",
    "statement",
]

logger = logging.getLogger(__name__)

MAX_MINT = 10_000  # identities one mint_many call makes at most (~0.1 ms each)
# Worst-case framing of one repeated MemberEntry inside a ViewSnapshot: a 1-byte tag and a
# length varint of up to 3 bytes (mesh.digest's _ENTRY_FRAMING).
_ENTRY_FRAMING = 4


def now_ms() -> int:
    """The wall clock in Unix milliseconds, as our nodes date their statements."""
    return math.floor(time.time() * 1000.0)


# --- identities -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """A libp2p identity: its key pair and its peer ID (base58 and raw bytes)."""

    key_pair: KeyPair
    peer_id: str
    id_bytes: bytes

    @classmethod
    def of(cls, key_pair: KeyPair) -> Identity:
        pid = ID.from_pubkey(key_pair.public_key)
        return cls(key_pair, pid.to_base58(), pid.to_bytes())

    @classmethod
    def of_host(cls, host: IHost) -> Identity:
        """The identity of a running host (a rogue's own key)."""
        return cls.of(KeyPair(host.get_private_key(), host.get_public_key()))


def mint() -> Identity:
    """A fresh Ed25519 identity: what anyone can make, as many times as it likes."""
    return Identity.of(create_new_key_pair())


def mint_many(count: int) -> list[Identity]:
    """``count`` fresh identities (at most :data:`MAX_MINT`)."""
    if not 0 <= count <= MAX_MINT:
        raise ValueError(f"need 0 <= count <= {MAX_MINT}, got {count}")
    return [mint() for _ in range(count)]


# --- signed envelopes -------------------------------------------------------------------


def sign(
    signer: Identity,
    data: bytes,
    *,
    topic: str = TOPIC,
    claim: str | None = None,
    with_key: bool = True,
) -> rpc_pb2.Message:
    """A pubsub message carrying ``data`` on ``topic``, signed by ``signer`` as py-libp2p's
    ``Pubsub.publish`` signs it.

    ``claim`` names another author (a base58 peer ID) in ``from``: the signature is still
    ``signer``'s, so the message does not verify (FORGED in a snapshot; dropped by
    py-libp2p's signature check on the topic). ``with_key=False`` leaves out ``key``, which
    an Ed25519 ID makes redundant (36 bytes fewer per envelope)."""
    author = ID.from_base58(claim).to_bytes() if claim is not None else signer.id_bytes
    message = rpc_pb2.Message(data=data, topicIDs=[topic], from_id=author, seqno=os.urandom(8))
    message.signature = signer.key_pair.private_key.sign(
        PUBSUB_SIGNING_PREFIX.encode() + message.SerializeToString()
    )
    if with_key:
        message.key = signer.key_pair.public_key.serialize()
    return message


def statement(message: rpc_pb2.Message) -> bytes:
    """The bytes of an envelope as a snapshot carries it (a ``digest_statement``)."""
    data: bytes = message.SerializeToString()
    return data


# --- statements past our encoder's checks -----------------------------------------------


def digest_of(
    node: Identity | str,
    *,
    start_time_ms: int,
    seq: int = 1,
    incarnation: int = 0,
    status: Status = Status.HEALTHY,
    score: float = 1.0,
    sent_at_ms: int | None = None,
    http_addr: str = "",
    version: str = "",
) -> HealthDigest:
    """A digest in ``node``'s name (dated now unless ``sent_at_ms``); nothing is checked."""
    return HealthDigest(
        node_id=node.peer_id if isinstance(node, Identity) else node,
        start_time_ms=start_time_ms,
        incarnation=incarnation,
        seq=seq,
        status=status,
        score=score,
        sent_at_ms=now_ms() if sent_at_ms is None else sent_at_ms,
        version=version,
        http_addr=http_addr,
    )


def notice_by(
    observer: Identity | str,
    suspect: str,
    basis: Version,
    *,
    sent_at_ms: int | None = None,
) -> SuspectNotice:
    """``observer`` suspects ``suspect`` at ``basis`` (dated now unless ``sent_at_ms``);
    nothing is checked, so the basis may name any life, incarnation or seq."""
    return SuspectNotice(
        observer_id=observer.peer_id if isinstance(observer, Identity) else observer,
        suspect_id=suspect,
        suspect_start_time_ms=basis.start_time_ms,
        suspect_incarnation=basis.incarnation,
        suspect_seq=basis.seq,
        sent_at_ms=now_ms() if sent_at_ms is None else sent_at_ms,
    )


def raw_gossip(message: Gossip, *, schema_version: int = SCHEMA_VERSION) -> bytes:
    """The wire form of ``message`` without ``encode_gossip``'s checks: any counter the
    protobuf field holds (uint64: up to 2**64 - 1; int64 times: up to 2**63 - 1), any
    status, no size limit. Beyond the field's type protobuf itself raises ValueError."""
    return unchecked_gossip(message, schema_version=schema_version)


# --- crafted snapshots ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForgedEntry:
    """One ``MemberEntry`` as a hostile responder writes it: envelopes (``statement``) of
    its choice, and any claimed state (a ``MemberState`` or a raw enum number)."""

    digest_statement: bytes
    state: MemberState | int = MemberState.ALIVE
    suspicions: tuple[bytes, ...] = ()
    leave_statement: bytes = b""

    def wire(self) -> Any:
        state = self.state
        number = (
            _pb.MemberState.Value(f"MEMBER_STATE_{state.name}")
            if isinstance(state, MemberState)
            else int(state)
        )
        # protoc's stub types the field as the enum; the runtime takes any number, which is
        # what a forged entry may claim.
        entry = _pb.MemberEntry(
            state=cast("_pb.MemberState", number), digest_statement=self.digest_statement
        )
        entry.suspicions.extend(self.suspicions)
        if self.leave_statement:
            entry.leave_statement = self.leave_statement
        return entry


def raw_snapshot(
    responder_id: str,
    entries: Iterable[ForgedEntry],
    *,
    sent_at_ms: int | None = None,
    truncated: bool = False,
    next_after: str = "",
    schema_version: int = SCHEMA_VERSION,
) -> bytes:
    """A ``ViewSnapshot`` from ``responder_id`` (it must be the serving host's peer ID, or
    the whole snapshot is SIGNER_MISMATCH), dated now unless ``sent_at_ms``, with
    ``next_after`` as the cursor of a next page; unchecked and unbounded: use
    :func:`fit_entries` to stay under ``MAX_SNAPSHOT_BYTES``."""
    snapshot: Any = _pb.ViewSnapshot(
        schema_version=schema_version,
        responder_id=responder_id,
        sent_at_ms=now_ms() if sent_at_ms is None else sent_at_ms,
        truncated=truncated,
        next_after=next_after,
    )
    snapshot.members.extend(entry.wire() for entry in entries)
    data: bytes = snapshot.SerializeToString(deterministic=True)
    return data


def fit_entries(
    responder_id: str, entries: Sequence[ForgedEntry], *, max_bytes: int = MAX_SNAPSHOT_BYTES
) -> int:
    """How many of ``entries``, from the first, fit in a snapshot of at most ``max_bytes``."""
    size = len(raw_snapshot(responder_id, (), truncated=True))
    for count, entry in enumerate(entries):
        size += entry.wire().ByteSize() + _ENTRY_FRAMING
        if size > max_bytes:
            return count
    return len(entries)


# --- a hostile pull server --------------------------------------------------------------

Answer = bytes | Callable[[str], bytes | None] | None


class PullServer:
    """Serves ``/chorus/health-view/1.0.0`` on a host with crafted bytes.

    ``answer`` is the snapshot to send, a function of the requesting peer's ID returning
    it, or None to refuse (reset the stream). Like our nodes' server it reads the request
    to EOF (at most ``MAX_PULL_REQUEST`` bytes, within ``read_timeout``; the page it asks
    for goes to ``cursors`` first), writes one answer and closes; unlike
    them it answers every request. ``calls`` counts requests per peer, ``served`` the
    answers written. Nothing a client does can raise out of the handler (py-libp2p would
    end the rogue's host)."""

    def __init__(
        self, answer: Answer = None, *, read_timeout: float = 2.0, write_timeout: float = 5.0
    ) -> None:
        self.answer: Answer = answer
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.calls: dict[str, int] = {}
        self.served: dict[str, int] = {}
        self.requests: list[bytes | None] = []  # what each client wrote (None: no EOF)
        # The page each request asked for ("" the first, None not a request), so that an
        # ``answer`` function can page, honestly or not.
        self.cursors: list[str | None] = []
        self._changed = trio.Event()

    def install(self, host: IHost) -> None:
        """Handle the pull protocol on ``host`` from now on."""
        host.set_stream_handler(TProtocol(PULL_PROTOCOL), self._handle)

    def total_calls(self) -> int:
        return sum(self.calls.values())

    async def until_served(self, peer: str, count: int = 1, *, timeout: float = 10.0) -> None:
        """Wait until ``peer`` has been answered ``count`` times (trio.TooSlowError)."""
        with trio.fail_after(timeout):
            while self.served.get(peer, 0) < count:
                await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _handle(self, stream: INetStream) -> None:
        try:
            peer = stream.muxed_conn.peer_id.to_base58()
            self.calls[peer] = self.calls.get(peer, 0) + 1
            self._notify()
            request: bytes | None = None
            with trio.move_on_after(self.read_timeout):
                request = await read_to_eof(stream, MAX_PULL_REQUEST)
            self.requests.append(request)
            ask = parse_pull_request(request)
            self.cursors.append(None if ask is None else ask.after)
            answer = self.answer(peer) if callable(self.answer) else self.answer
            if answer is None:
                await _reset(stream)
                return
            with trio.fail_after(self.write_timeout):
                await stream.write(answer)
                await stream.close()
            self.served[peer] = self.served.get(peer, 0) + 1
            self._notify()
        except Exception as exc:
            logger.info("forged pull answer failed: %r", exc)
            await _reset(stream)


async def _reset(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), contextlib.suppress(Exception):
        await stream.reset()
