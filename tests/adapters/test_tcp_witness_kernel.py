"""The kernel's own word on duplicates: a lost ACK against a lost segment, on real sockets.

Each case runs in a network namespace of its own (``unshare -n``) where nftables drops, for
150 ms, either the receiver's ACKs (the sender then retransmits a segment that had arrived,
and the receiver reports it as a duplicate: D-SACK) or the sender's segment itself (a real
loss). The witness must read the first as nothing lost and the second as a loss; it reads
``tcpi_dsack_dups`` at a fixed offset of ``struct tcp_info``, which only a real kernel checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "") == "true"

SCRIPT = r"""
import json, socket, subprocess, sys, time
from adapters.tcp_witness import read_tcp_state

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

def nft(script):
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)

def settled(sock, done):
    deadline = time.monotonic() + 5.0
    state = read_tcp_state(sock)
    while time.monotonic() < deadline and not (state is not None and done(state)):
        time.sleep(0.01)
        state = read_tcp_state(sock)
    return state

out = {}
with socket.create_server(("127.0.0.1", 0)) as server:
    port = server.getsockname()[1]
    cases = {
        "ack_lost": (f"tcp sport {port}", lambda s: s.dsack_dups > 0),
        "segment_lost": (f"tcp dport {port} ip length > 100", lambda s: s.total_retrans > 0),
    }
    for case, (match, seen) in cases.items():
        a = socket.create_connection(("127.0.0.1", port))
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        b, _ = server.accept()
        with a, b:
            nft("table inet t {\n chain i {\n type filter hook input priority 0;\n"
                f" {match} drop\n }}\n}}\n")
            a.sendall(b"x" * 100)
            time.sleep(0.15)
            nft("delete table inet t")
            state = settled(a, lambda s: s.unacked == 0 and seen(s))
            out[case] = state and [state.total_retrans, state.dsack_dups, state.lost]
print(json.dumps(out))
"""


def _usable() -> bool:
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nft")):
        return False
    return (
        subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    )


@pytest.mark.network
@pytest.mark.skipif(
    sys.platform != "linux" or (not IN_CI and not _usable()),
    reason="needs Linux, root, unshare and nftables",
)
def test_a_lost_ack_is_a_duplicate_and_a_lost_segment_a_loss() -> None:
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # [total_retrans, dsack_dups, lost]; a slow machine may retransmit twice.
    retrans, dups, lost = seen["ack_lost"]
    assert retrans >= 1 and dups == retrans and lost == 0
    retrans, dups, lost = seen["segment_lost"]
    assert retrans >= 1 and lost >= 1
