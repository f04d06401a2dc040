"""The idle-cost tool's pure parts (devnet/cost_breakdown.py, devnet/costinst): RPC and
frame classification, the per-protocol summary, the py-spy stack sorting and the checks
done before a devnet starts. No node, no socket, no root."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import pytest
from libp2p.pubsub.pb import rpc_pb2

from devnet import cost_breakdown
from devnet.costinst import _cost_hooks as hooks
from devnet.costinst import spy_classify, summarize


def framed(rpc: Any) -> bytes:
    body = rpc.SerializeToString()
    length, prefix = len(body), bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        prefix.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(prefix) + body


def test_rpc_with_messages_is_data_per_topic() -> None:
    rpc = rpc_pb2.RPC()
    rpc.publish.add(topicIDs=["CHORUS/health-scores/v1"], data=b"x" * 300)
    rpc.publish.add(topicIDs=["CHORUS/health-test/v1"], data=b"y")
    assert hooks.classify_rpc(framed(rpc)) == "data:CHORUS/health-scores/v1,CHORUS/health-test/v1"


def test_rpc_control_and_subscriptions() -> None:
    rpc = rpc_pb2.RPC()
    rpc.control.graft.add(topicID="t")
    rpc.control.ihave.add(topicID="t", messageIDs=[b"m"])
    rpc.subscriptions.add(subscribe=True, topicid="t")
    assert hooks.classify_rpc(framed(rpc)) == "control:IHAVE+control:GRAFT+subscriptions"
    assert hooks.classify_rpc(framed(rpc_pb2.RPC())) == "empty-rpc"


def test_truncated_or_foreign_rpc_is_undecodable() -> None:
    rpc = rpc_pb2.RPC()
    rpc.publish.add(topicIDs=["t"], data=b"z" * 200)
    assert hooks.classify_rpc(framed(rpc)[:50]) == "undecodable"
    assert hooks.classify_rpc(b"") == "undecodable"


def test_kademlia_writes_by_message_type() -> None:
    from libp2p.kad_dht.pb.kademlia_pb2 import Message, Record

    answer = Message(type=Message.MessageType.FIND_NODE)
    answer.closerPeers.add(id=b"peer", addrs=[b"addr"])
    assert hooks.classify_kad(answer.SerializeToString()) == "kad:FIND_NODE+closer-peers"
    put = Message(type=Message.MessageType.PUT_VALUE, record=Record(key=b"k", value=b"v"))
    assert hooks.classify_kad(put.SerializeToString()) == "kad:PUT_VALUE+record"
    assert hooks.classify_kad(b"\x80\x01") == "kad:length-prefix"  # written apart by py-libp2p
    assert hooks.classify_kad(b"\xff" * 10) == "kad:undecodable"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ((2, 1, 0, None, False, None), ("yamux | session ping (RTT)", None)),
        ((3, 0, 0, None, False, None), ("yamux | go away", None)),
        (
            (1, 0, 0, "/meshsub/1.1.0", True, None),
            ("/meshsub/1.1.0 | yamux window update", "yamux window update"),
        ),
        (
            (0, 4, 0, "/ipfs/kad/1.0.0", True, None),
            ("/ipfs/kad/1.0.0 | yamux empty frame [FIN]", "yamux empty frame [FIN]"),
        ),
        # Before negotiation ends the stream has no protocol yet: untagged, moved later.
        (
            (0, 1, 40, None, True, None),
            ("?untagged | multistream-select [SYN]", "multistream-select [SYN]"),
        ),
        (
            (0, 0, 900, "/meshsub/1.1.0", True, "data:CHORUS/health-scores/v1"),
            ("/meshsub/1.1.0 | data:CHORUS/health-scores/v1", "data:CHORUS/health-scores/v1"),
        ),
        ((0, 0, 32, "/ipfs/ping/1.0.0", True, None), ("/ipfs/ping/1.0.0 | payload", "payload")),
        (
            (0, 8, 0, None, False, None),
            ("?closed-stream | yamux empty frame [RST]", "yamux empty frame [RST]"),
        ),
    ],
)
def test_frame_key(frame: tuple[Any, ...], expected: tuple[str, str | None]) -> None:
    assert hooks.frame_key(*frame) == expected


def test_overrides_are_checked_against_the_current_fields() -> None:
    env = {
        "COST_P2P": '{"ping_reuse_streams": false, "gossip_degree": 4}',
        "COST_CLUSTER": '{"refresh_period": 5.0}',
        "COST_HEALTH": '{"pubsub_probe_interval": 60.0}',
        "COST_TUNING": '{"tick_max": 1.0, "publish_poll": 1.0}',
        "COST_GOSSIPSUB": '{"gossip_window": 3}',
        "COST_IGNORED": "{}",
    }
    overrides = hooks.parse_overrides(env)
    assert set(overrides) == set(hooks.OVERRIDE_VARS)
    assert hooks.unknown_fields(overrides, hooks.override_targets()) == []
    bad = hooks.parse_overrides({"COST_P2P": '{"ping_intervall": 1}'})
    assert hooks.unknown_fields(bad, hooks.override_targets()) == ["COST_P2P: ping_intervall"]
    with pytest.raises(ValueError, match="JSON object"):
        hooks.parse_overrides({"COST_TUNING": "[1]"})


def args_for(*argv: str) -> argparse.Namespace:
    return cost_breakdown.parser().parse_args(list(argv))


def test_cli_refuses_bad_overrides_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cost_breakdown.main(["--cluster", '{"refresh_perio": 5}']) == 2
    assert "COST_CLUSTER: refresh_perio" in capsys.readouterr().err
    assert cost_breakdown.main(["--kad-refresh", "soon"]) == 2


def test_cli_without_capture_rights_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cost_breakdown.Capture, "available", property(lambda self: False))
    monkeypatch.setattr(cost_breakdown, "measure", lambda *a: pytest.fail("devnet started"))
    assert cost_breakdown.main(["-n", "3"]) == 2
    assert "needs root" in capsys.readouterr().err


def test_node_env_puts_hooks_first_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COST_P2P", '{"stale": 1}')
    plain = cost_breakdown.node_env(args_for(), cost_breakdown.REPO / "dumps")
    assert "COST_P2P" not in plain
    assert plain["PYTHONPATH"] == str(cost_breakdown.REPO)
    env = cost_breakdown.node_env(
        args_for("--instrument", "--health", '{"dht_probe_interval": 120}', "--env", "A=b=c"),
        cost_breakdown.REPO / "dumps",
    )
    assert env["PYTHONPATH"].split(":")[0] == str(cost_breakdown.COSTINST)
    assert env["COST_INSTRUMENT"] == "1" and env["COST_HEALTH"] == '{"dht_probe_interval": 120}'
    assert env["A"] == "b=c"


def test_capture_counts_tcp_to_our_ports_and_pure_acks() -> None:
    def packet(sport: int, dport: int, payload: int, proto: int = 6) -> bytes:
        ip = bytearray(20 + 32 + payload)
        ip[0], ip[9] = 0x45, proto
        ip[2:4] = len(ip).to_bytes(2, "big")
        ip[20:24] = sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
        ip[32] = 8 << 4  # TCP header of 32 bytes (timestamps)
        return bytes(ip)

    capture = cost_breakdown.Capture.__new__(cost_breakdown.Capture)
    capture.ports = {4001}
    capture.bytes = capture.packets = capture.ack_packets = capture.ack_bytes = 0
    capture.count(packet(4001, 50000, 100))
    capture.count(packet(50000, 4001, 0))
    capture.count(packet(5000, 6000, 100))  # not ours
    capture.count(packet(4001, 50000, 100, proto=17))  # UDP
    assert (capture.packets, capture.bytes) == (2, 152 + 52)
    assert (capture.ack_packets, capture.ack_bytes) == (1, 52)


DIGESTS = "/meshsub/1.1.0 | data:CHORUS/health-scores/v1"


def test_breakdown_is_the_mean_rate_per_node() -> None:
    before = {1: {"t": 0.0, "counts": {DIGESTS: [10, 9000]}}, 2: {"t": 5.0, "counts": {}}}
    after = {
        1: {"t": 10.0, "counts": {DIGESTS: [30, 27000], "yamux | session ping (RTT)": [1, 12]}},
        2: {"t": 25.0, "counts": {DIGESTS: [20, 18000]}},
        3: {"t": 10.0, "counts": {DIGESTS: [99, 99]}},  # no first dump: left out
    }
    used, rates = summarize.breakdown(before, after)
    assert used == 2
    assert list(rates) == [DIGESTS, "yamux | session ping (RTT)"]
    assert rates[DIGESTS]["writes_per_s"] == pytest.approx(1.5)
    assert rates[DIGESTS]["payload_bytes_per_s"] == pytest.approx(1350)
    assert rates[DIGESTS]["wire_bytes_per_s"] == pytest.approx(1350 + 1.5 * 52)


def test_counters_are_grouped_into_the_protocol_table() -> None:
    result = {
        "breakdown": {
            DIGESTS: {"writes_per_s": 2.0, "payload_bytes_per_s": 1700, "wire_bytes_per_s": 1804},
            "/meshsub/1.1.0 | yamux window update": {
                "writes_per_s": 1.0,
                "payload_bytes_per_s": 12,
                "wire_bytes_per_s": 64,
            },
            "?untagged | multistream-select [SYN]": {
                "writes_per_s": 1.0,
                "payload_bytes_per_s": 48,
                "wire_bytes_per_s": 100,
            },
            "/ipfs/ping/1.0.0 | payload": {
                "writes_per_s": 1.0,
                "payload_bytes_per_s": 32,
                "wire_bytes_per_s": 84,
            },
            "/ipfs/kad/1.0.0 | payload": {
                "writes_per_s": 1.0,
                "payload_bytes_per_s": 100,
                "wire_bytes_per_s": 152,
            },
        },
        "ack_packets_per_s": 3.0,
        "ack_bytes_per_s": 156.0,
        "bytes_per_s": 2400.0,
        "packets_per_s": 9.0,
    }
    groups = summarize.grouped(result)
    pings = groups["liveness pings /ipfs/ping/1.0.0 (both sides, all frames)"]
    assert pings == {"w": 2.0, "b": 184.0, "fw": 1.0, "fb": 100.0}
    framing = groups["GossipSub yamux framing (window updates, stream open/close)"]
    assert framing["fw"] == framing["w"] == 1.0
    assert groups["GossipSub data: health digests (CHORUS/health-scores/v1)"]["b"] == 1804
    assert groups[summarize.ACKS]["w"] == 3.0
    table = summarize.protocols_table(result)
    assert table.splitlines()[2].startswith("| GossipSub data: health digests")
    assert "| **total (instrumented estimate)** | **2360** | **9.0** |" in table
    assert "[SYN]" in summarize.render({**result, "label": "x"})


def test_group_of_unknown_protocol_is_other() -> None:
    assert summarize.group_of("pre-mux (noise handshake)") == "other (handshakes, closed streams)"
    assert summarize.group_of("yamux | go away") == "yamux session (RTT ping, go-away)"


def test_spy_stacks_are_sorted_by_first_matching_rule() -> None:
    lines = [
        "run (trio/_core/_run.py);verify_msg (libp2p/pubsub/pubsub.py);sign (nacl) 7\n",
        "run;continuously_read_stream (libp2p/pubsub/pubsub.py) 5\n",
        "run;get_events (trio/_core/_io_epoll.py) 100\n",
        "run;send (trio/_highlevel_socket.py) 2\n",
        "run;something_else (x.py) 1\n",
        "malformed line\n",
    ]
    totals = spy_classify.tally(lines)
    assert totals == Counter(
        {
            spy_classify.IDLE: 100,
            "crypto: Ed25519 sign/verify": 7,
            "pubsub inbound (read, validate, route)": 5,
            "socket/noise I/O (stack without its task)": 2,
            "other": 1,
        }
    )
    report = spy_classify.report(totals)
    assert report.splitlines()[0] == "samples busy=15 idle(epoll)=100"
    assert report.splitlines()[1].endswith("crypto: Ed25519 sign/verify")


def test_tuning_overrides_apply_over_what_the_node_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.gossip as gossip
    from adapters.gossip_tuning import GossipTuning

    seen: list[GossipTuning] = []
    monkeypatch.setattr(
        gossip.GossipService, "__init__", lambda self, *a, **kw: seen.append(kw["tuning"])
    )
    hooks.install_overrides({"COST_TUNING": '{"tick_max": 1.0}'})
    gossip.GossipService(tuning=GossipTuning(meet_links=5))  # type: ignore[call-arg]
    assert (seen[0].tick_max, seen[0].meet_links) == (1.0, 5)
