"""Per-protocol TCP-write counters and settings overrides, patched into a node process.

Measurement tool, not product code: devnet/cost_breakdown.py puts this folder first on the
nodes' PYTHONPATH so that ``sitecustomize.py`` calls :func:`install_from_env` at start-up.
Nothing here runs in a node started any other way.

Counters (``COST_INSTRUMENT=1``, ``COST_OUT=<folder>``): every TCP write is counted under
``"<protocol> | <kind>"``, where kind separates multistream-select negotiation, yamux
stream open/close/reset frames, yamux window updates and, on GossipSub streams, the RPC
content (``data:<topic>``, ``control:IHAVE`` ..., ``subscriptions``). The process dumps
its cumulative counts to ``$COST_OUT/<pid>.json`` once a second; the tool takes the
difference between two dumps.

Overrides (JSON objects in environment variables; unknown field names fail at once):
``COST_P2P`` (adapters.p2p_config.P2PConfig), ``COST_CLUSTER`` (mesh.cluster_config.
ClusterConfig), ``COST_HEALTH`` (probes.health_config.HealthConfig), ``COST_TUNING``
(adapters.gossip_tuning.GossipTuning), ``COST_GOSSIPSUB`` (extra keyword arguments of py-libp2p's
GossipSub) and ``COST_KAD_REFRESH`` (seconds between Kademlia routing-table refreshes).

The patches replace private py-libp2p 0.8.1 methods (``TrioTCPStream.write``,
``NetStream.set_protocol``/``write``, ``Yamux._write_frame``); another py-libp2p version
may need them adjusted. yamux credit (adapters/yamux_credit.py) is installed by the node
itself and untouched here: the counters see the frames it sends.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
import json
import os
import struct
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

# Environment variables the tool sets for the nodes; cost_breakdown clears them first so a
# stale value in the caller's shell cannot leak into a run.
OVERRIDE_VARS = ("COST_P2P", "COST_CLUSTER", "COST_HEALTH", "COST_TUNING", "COST_GOSSIPSUB")
ENV_VARS = ("COST_INSTRUMENT", "COST_OUT", *OVERRIDE_VARS, "COST_KAD_REFRESH")

# Written before any stream exists (noise handshake, security and muxer negotiation).
PRE_MUX = "pre-mux (noise handshake / security+muxer negotiation)"
UNTAGGED = "?untagged"

# yamux frame types and flags (yamux spec; py-libp2p's yamux.py uses the same numbers).
_TYPE_WINDOW_UPDATE, _TYPE_PING, _TYPE_GO_AWAY = 1, 2, 3
_FLAGS = ((1, "SYN"), (2, "ACK"), (4, "FIN"), (8, "RST"))

COUNTS: dict[str, list[int]] = {}  # key -> [tcp writes, tcp payload bytes]
# The key of the yamux frame being written, and of the GossipSub RPC inside it: a noise
# frame's TCP write happens further down the same task, so a contextvar carries them.
_CAT: contextvars.ContextVar[str | None] = contextvars.ContextVar("cost_cat", default=None)
_SUB: contextvars.ContextVar[str | None] = contextvars.ContextVar("cost_sub", default=None)
_ACC: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("cost_acc", default=None)
_dumper_started = False


def add(key: str, writes: int, nbytes: int) -> None:
    entry = COUNTS.setdefault(key, [0, 0])
    entry[0] += writes
    entry[1] += nbytes


def flag_names(flags: int) -> str:
    return "+".join(name for bit, name in _FLAGS if flags & bit)


def classify_rpc(data: bytes) -> str:
    """What a GossipSub stream write carries: ``data:<topics>``, ``control:<kinds>``,
    ``subscriptions``, joined with ``+``. ``data`` is one varint-length-prefixed RPC."""
    from libp2p.pubsub.pb import rpc_pb2

    try:
        index, shift, length = 0, 0, 0
        while True:
            byte = data[index]
            length |= (byte & 0x7F) << shift
            index += 1
            if not byte & 0x80:
                break
            shift += 7
        body = bytes(data[index : index + length])
        if len(body) != length:
            return "undecodable"
        rpc = rpc_pb2.RPC()
        rpc.ParseFromString(body)
    except Exception:  # a truncated or foreign frame is counted, not a crash in the node
        return "undecodable"
    parts: list[str] = []
    if rpc.publish:
        topics = sorted({m.topicIDs[0] if m.topicIDs else "?" for m in rpc.publish})
        parts.append("data:" + ",".join(topics))
    if rpc.HasField("control"):
        control = rpc.control
        for name in ("ihave", "iwant", "graft", "prune", "idontwant"):
            if len(getattr(control, name, ())):
                parts.append("control:" + name.upper())
    if rpc.subscriptions:
        parts.append("subscriptions")
    return "+".join(parts) or "empty-rpc"


def classify_kad(data: bytes) -> str:
    """What a Kademlia stream write carries. py-libp2p writes a message's varint length
    and its body separately, so a short write is a length prefix."""
    if len(data) <= 3:
        return "kad:length-prefix"
    from libp2p.kad_dht.pb import kademlia_pb2

    try:
        msg = kademlia_pb2.Message()
        msg.ParseFromString(bytes(data))
    except Exception:  # a write that is not one whole message is counted, not a crash
        return "kad:undecodable"
    parts = ["kad:" + kademlia_pb2.Message.MessageType.Name(msg.type)]
    if len(msg.closerPeers):
        parts.append("closer-peers")
    if msg.HasField("record"):
        parts.append("record")
    return "+".join(parts)


def frame_key(
    frame_type: int,
    flags: int,
    payload_len: int,
    proto: str | None,
    stream_known: bool,
    rpc_kind: str | None,
) -> tuple[str, str | None]:
    """Counter key for one yamux frame, and its kind (None for session frames, which
    belong to no stream). ``proto`` is the stream's negotiated protocol, None before
    multistream-select has finished; such frames go under ``?untagged`` and are moved to
    the protocol once it is known (see :func:`install_counters`)."""
    if frame_type == _TYPE_PING:
        return "yamux | session ping (RTT)", None
    if frame_type == _TYPE_GO_AWAY:
        return "yamux | go away", None
    names = flag_names(flags)
    suffix = f" [{names}]" if names else ""
    if frame_type == _TYPE_WINDOW_UPDATE:
        kind = "yamux window update" + suffix
    elif payload_len == 0:
        kind = f"yamux empty frame [{names}]"
    elif proto is None:
        kind = "multistream-select" + suffix
    else:
        kind = (rpc_kind or "payload") + suffix
    if proto is None and stream_known:
        return f"{UNTAGGED} | {kind}", kind
    return f"{proto or '?closed-stream'} | {kind}", kind


def _dump_loop(folder: str) -> None:
    path = os.path.join(folder, f"{os.getpid()}.json")
    while True:
        time.sleep(1.0)
        try:
            snapshot = {key: list(value) for key, value in list(COUNTS.items())}
            tmp = path + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(
                    {
                        "t": time.monotonic(),
                        "pid": os.getpid(),
                        "argv": sys.argv,
                        "counts": snapshot,
                    },
                    handle,
                )
            os.replace(tmp, path)  # the reader never sees a half-written file
        except Exception:  # a full disk must not kill the node under measurement
            pass


def _ensure_dumper() -> None:
    # Started on the first write rather than at import: the CLI's own short-lived
    # processes (argument parsing, key generation) never write and leave no dumps.
    global _dumper_started
    folder = os.environ.get("COST_OUT")
    if not _dumper_started and folder:
        _dumper_started = True
        os.makedirs(folder, exist_ok=True)
        threading.Thread(target=_dump_loop, args=(folder,), daemon=True, name="cost-dump").start()


def install_counters() -> None:
    from libp2p.io.trio import TrioTCPStream
    from libp2p.network.stream.net_stream import NetStream
    from libp2p.stream_muxer.yamux import yamux as ymod

    orig_tcp_write = TrioTCPStream.write

    async def tcp_write(self: Any, data: bytes) -> None:
        _ensure_dumper()
        add(_CAT.get() or PRE_MUX, 1, len(data))
        acc = _ACC.get()
        if acc is not None:
            acc[0] += 1
            acc[1] += len(data)
        await orig_tcp_write(self, data)

    orig_set_protocol = NetStream.set_protocol

    def set_protocol(self: Any, protocol_id: Any) -> None:
        orig_set_protocol(self, protocol_id)
        muxed = self.muxed_stream
        if getattr(muxed, "_cost_proto", None) is not None:
            return
        try:
            muxed._cost_proto = str(protocol_id)
        except AttributeError:  # a muxer whose streams take no attributes: leave untagged
            return
        # The negotiation frames were written before the protocol was known: move them.
        pending: dict[str, list[int]] = getattr(muxed, "_cost_pre", None) or {}
        for kind, (writes, nbytes) in pending.items():
            add(f"{UNTAGGED} | {kind}", -writes, -nbytes)
            add(f"{protocol_id} | {kind}", writes, nbytes)
        pending.clear()

    orig_ns_write = NetStream.write

    async def ns_write(self: Any, data: bytes) -> None:
        proto = str(self.protocol_id or "")
        classify = (
            classify_rpc if "meshsub" in proto else classify_kad if "/kad/" in proto else None
        )
        if classify is None:
            await orig_ns_write(self, data)
            return
        token = _SUB.set(classify(data))
        try:
            await orig_ns_write(self, data)
        finally:
            _SUB.reset(token)

    orig_write_frame = ymod.Yamux._write_frame
    header_format, header_size = ymod.YAMUX_HEADER_FORMAT, ymod.HEADER_SIZE

    async def write_frame(self: Any, data: bytes) -> None:
        try:
            _, frame_type, flags, stream_id, _ = struct.unpack(header_format, data[:header_size])
        except struct.error:
            await orig_write_frame(self, data)
            return
        stream = self.streams.get(stream_id) if stream_id else None
        proto = getattr(stream, "_cost_proto", None) if stream is not None else None
        key, kind = frame_key(
            frame_type, flags, len(data) - header_size, proto, stream is not None, _SUB.get()
        )
        acc = [0, 0]
        cat_token, acc_token = _CAT.set(key), _ACC.set(acc)
        try:
            await orig_write_frame(self, data)
        finally:
            _CAT.reset(cat_token)
            _ACC.reset(acc_token)
            if proto is None and stream is not None and kind is not None and acc[0]:
                pending = getattr(stream, "_cost_pre", None)
                if pending is None:
                    pending = stream._cost_pre = {}
                entry = pending.setdefault(kind, [0, 0])
                entry[0] += acc[0]
                entry[1] += acc[1]

    TrioTCPStream.write = tcp_write  # type: ignore[method-assign]
    NetStream.set_protocol = set_protocol  # type: ignore[method-assign]
    NetStream.write = ns_write  # type: ignore[method-assign]
    ymod.Yamux._write_frame = write_frame  # type: ignore[method-assign]


def parse_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The JSON objects of :data:`OVERRIDE_VARS` present in ``environ``."""
    out: dict[str, dict[str, Any]] = {}
    for var in OVERRIDE_VARS:
        raw = environ.get(var)
        if not raw:
            continue
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError(f"{var} must be a JSON object, got {raw!r}")
        out[var] = value
    return out


def override_targets() -> dict[str, set[str]]:
    """Field (or keyword) names each override variable accepts, from the current code."""
    from libp2p.pubsub.gossipsub import GossipSub

    from adapters.gossip_tuning import GossipTuning
    from adapters.p2p_config import P2PConfig
    from mesh.cluster_config import ClusterConfig
    from probes.health_config import HealthConfig

    def fields(cls: Any) -> set[str]:
        return {field.name for field in dataclasses.fields(cls)}

    return {
        "COST_P2P": fields(P2PConfig),
        "COST_CLUSTER": fields(ClusterConfig),
        "COST_HEALTH": fields(HealthConfig),
        "COST_TUNING": fields(GossipTuning),
        "COST_GOSSIPSUB": set(inspect.signature(GossipSub.__init__).parameters) - {"self"},
    }


def unknown_fields(
    overrides: Mapping[str, Mapping[str, Any]], targets: Mapping[str, set[str]]
) -> list[str]:
    """``VAR: name`` for every override naming a field its target does not have."""
    return [
        f"{var}: {name}"
        for var, fields in overrides.items()
        for name in fields
        if name not in targets.get(var, set())
    ]


def install_overrides(environ: Mapping[str, str]) -> None:
    refresh = environ.get("COST_KAD_REFRESH")
    if refresh:
        import libp2p.kad_dht.kad_dht as kad

        # Read by the refresh loop at every sleep, so setting the module global suffices.
        kad.ROUTING_TABLE_REFRESH_INTERVAL = float(refresh)  # type: ignore[assignment]
    overrides = parse_overrides(environ)
    if not overrides:
        return
    bad = unknown_fields(overrides, override_targets())
    if bad:
        raise ValueError("unknown override field(s): " + ", ".join(bad))
    import adapters.gossip as gossip
    import adapters.gossip_tuning as gossip_tuning
    import adapters.libp2p_host as host
    import adapters.node_settings as settings

    # adapters.node looks these up in adapters.node_settings when it builds a node, so
    # replacing them there changes the configuration without touching the product code.
    if p2p := overrides.get("COST_P2P"):
        base_p2p = settings.p2p_config
        settings.p2p_config = lambda config: dataclasses.replace(base_p2p(config), **p2p)
    if cluster := overrides.get("COST_CLUSTER"):
        base_cluster = settings.cluster_config_for
        settings.cluster_config_for = lambda config: dataclasses.replace(
            base_cluster(config), **cluster
        )
    if health := overrides.get("COST_HEALTH"):
        # The production profile's preset; the devnet profile's is not overridden.
        settings.DEFAULT_CONFIG = dataclasses.replace(settings.DEFAULT_CONFIG, **health)  # type: ignore[attr-defined]
    if tuning := overrides.get("COST_TUNING"):
        base_init = gossip.GossipService.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            # Over what the node passes (its --meet-links), not instead of it.
            given = kwargs.get("tuning") or gossip_tuning.GossipTuning()
            kwargs["tuning"] = dataclasses.replace(given, **tuning)
            base_init(self, *args, **kwargs)

        gossip.GossipService.__init__ = init  # type: ignore[method-assign]
    if gossipsub := overrides.get("COST_GOSSIPSUB"):
        base_router = host.FloodingGossipSub  # type: ignore[attr-defined]

        def make_router(*args: Any, **kwargs: Any) -> Any:
            return base_router(*args, **{**kwargs, **gossipsub})

        host.FloodingGossipSub = make_router  # type: ignore[attr-defined,assignment]
    print(f"cost overrides: {json.dumps(overrides, sort_keys=True)}", file=sys.stderr)


def install_from_env(environ: Mapping[str, str] = os.environ) -> None:
    if environ.get("COST_INSTRUMENT") == "1":
        install_counters()
    install_overrides(environ)
