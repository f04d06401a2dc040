"""KernelWitness's verdict from TCP state, and the state read from real sockets."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest

from adapters.tcp_witness import KernelWitness, TcpState, read_tcp_state, socket_of

QUIET = TcpState(unacked=0, total_retrans=0, inq=0)


def test_acknowledged_ping_on_a_clean_link_with_nothing_unread_is_silent() -> None:
    witness = KernelWitness(clean_for=30)
    assert witness.judge("conn", QUIET, now=100.0, before=QUIET)
    assert not witness.judge("conn", None, now=100.0, before=QUIET)  # the kernel would not say


@pytest.mark.parametrize(
    "state",
    [TcpState(unacked=1, total_retrans=0, inq=0), TcpState(unacked=0, total_retrans=0, inq=7)],
    ids=["not-acknowledged-yet", "our-own-bytes-unread"],
)
def test_a_ping_still_on_its_way_or_an_answer_we_have_not_read_is_not(state: TcpState) -> None:
    assert not KernelWitness(clean_for=30).judge("conn", state, now=100.0, before=state)


def test_a_retransmit_makes_the_link_unclean_for_clean_for_seconds() -> None:
    witness = KernelWitness(clean_for=30)
    assert witness.judge("conn", QUIET, now=100.0, before=QUIET)
    lossy = TcpState(unacked=0, total_retrans=3, inq=0)
    assert not witness.judge("conn", lossy, now=101.0, before=lossy)
    assert not witness.judge("conn", lossy, now=130.9, before=lossy)
    assert witness.judge("conn", lossy, now=131.0, before=lossy)
    # Each new retransmit starts the wait again; another connection is not affected.
    worse = TcpState(unacked=0, total_retrans=4, inq=0)
    assert not witness.judge("conn", worse, now=140.0, before=worse)
    assert witness.judge("other", QUIET, now=140.0, before=QUIET)


def test_retransmits_the_peer_reported_as_duplicates_were_not_lost() -> None:
    # Loopback's tail-loss probes while the peer's kernel delayed its ACK: every one
    # D-SACKed. The link is clean at the first look, and stays clean as more come.
    witness = KernelWitness(clean_for=30)
    spurious = TcpState(unacked=0, total_retrans=4, inq=0, dsack_dups=4)
    assert spurious.lost == 0
    assert witness.judge("conn", spurious, now=100.0, before=spurious)
    more = TcpState(unacked=0, total_retrans=6, inq=0, dsack_dups=6)
    assert witness.judge("conn", more, now=101.0, before=more)
    # One retransmit the peer did not report as a duplicate was a loss.
    lossy = TcpState(unacked=0, total_retrans=7, inq=0, dsack_dups=6)
    assert not witness.judge("conn", lossy, now=102.0, before=lossy)
    # A duplicate report arriving later lowers the count, not the clock it started.
    caught_up = TcpState(unacked=0, total_retrans=7, inq=0, dsack_dups=7)
    assert not witness.judge("conn", caught_up, now=110.0, before=caught_up)
    assert witness.judge("conn", caught_up, now=132.0, before=caught_up)


def test_a_resend_since_the_last_look_vetoes_this_one_duplicate_or_not() -> None:
    # A lost answer: it carried the peer's ACK, so our kernel resent the ping and the peer
    # reported a duplicate. The answer is on its way again: no verdict at this look.
    witness = KernelWitness(clean_for=30)
    written = TcpState(unacked=1, total_retrans=4, inq=0, dsack_dups=4)
    resent = TcpState(unacked=0, total_retrans=5, inq=0, dsack_dups=5)
    assert not witness.judge("conn", resent, now=100.0, before=written)
    assert not witness.judge("conn", resent, now=100.0, before=None)  # cannot tell
    # The next look, nothing resent since: the duplicate is history, the link clean.
    assert witness.judge("conn", resent, now=100.75, before=resent)


def test_losses_before_we_first_looked_count_as_recent_duplicates_or_not() -> None:
    witness = KernelWitness(clean_for=30)
    mixed = TcpState(unacked=0, total_retrans=5, inq=0, dsack_dups=3)
    assert not witness.judge("conn", mixed, now=100.0, before=mixed)
    assert witness.judge("conn", mixed, now=130.0, before=mixed)


def test_retransmits_before_we_first_looked_count_as_recent() -> None:
    witness = KernelWitness(clean_for=30)
    lossy = TcpState(unacked=0, total_retrans=2, inq=0)
    assert not witness.judge("conn", lossy, now=100.0, before=lossy)
    assert witness.judge("conn", lossy, now=130.0, before=lossy)


def test_forget_keeps_only_live_connections() -> None:
    witness = KernelWitness(clean_for=30)
    lossy = TcpState(unacked=0, total_retrans=2, inq=0)
    witness.judge("gone", lossy, now=100.0, before=lossy)
    witness.judge("kept", lossy, now=100.0, before=lossy)
    witness.forget({"kept"})
    assert list(witness._seen) == ["kept"]
    # A connection forgotten and seen again starts unclean again (retransmits known).
    assert not witness.judge("gone", lossy, now=129.0, before=lossy)


def test_socket_of_follows_py_libp2ps_layers_and_gives_up_on_others() -> None:
    sock = socket.socket()
    try:
        raw = SimpleNamespace(stream=SimpleNamespace(stream=SimpleNamespace(socket=sock)))
        conn = SimpleNamespace(
            muxed_conn=SimpleNamespace(
                secured_conn=SimpleNamespace(
                    conn=SimpleNamespace(read_writer=SimpleNamespace(read_write_closer=raw))
                )
            )
        )
        assert socket_of(conn) is sock
        assert socket_of(SimpleNamespace(muxed_conn=SimpleNamespace())) is None
        assert socket_of(object()) is None
    finally:
        sock.close()


def test_real_tcp_state_sees_the_peers_kernel_acknowledge_and_our_unread_bytes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        a = socket.create_connection(server.getsockname())
        b, _ = server.accept()
        with a, b:
            a.sendall(b"ping")  # b never reads: a process that is not running
            # b's kernel may delay its ACK (40 ms on Linux): a bounded wait for it.
            deadline = time.monotonic() + 2.0
            while (state := read_tcp_state(a)) is not None and state.unacked:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            assert state is not None and state.unacked == 0 and state.inq == 0
            b_state = read_tcp_state(b)
            assert b_state is not None and b_state.inq == 4 and b_state.total_retrans == 0
    assert read_tcp_state(a) is None  # closed: the kernel will not say


def test_real_tcp_state_sees_the_peer_close_before_we_read_it() -> None:
    # A killed process's kernel closes its end at once; py-libp2p may read the close a
    # second later on a busy node. Our kernel knows meanwhile (CLOSE_WAIT).
    with socket.create_server(("127.0.0.1", 0)) as server:
        a = socket.create_connection(server.getsockname())
        b, _ = server.accept()
        with a:
            state = read_tcp_state(a)
            assert state is not None and not state.peer_closed
            b.close()
            deadline = time.monotonic() + 2.0
            while (state := read_tcp_state(a)) is not None and not state.peer_closed:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            assert state is not None and state.peer_closed and state.tcp_state == 8  # CLOSE_WAIT
