"""LinkPinger's early verdict on a kept ping stream, with fake streams and a mock clock."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID

from adapters.p2p_config import P2PConfig, P2PError
from adapters.pinger import LinkPinger

PEER = ID(b"frozen-peer")


class Stream:
    """A kept /ipfs/ping stream: echoes after ``answer_after`` seconds (never if None);
    its writes block forever with ``stuck``."""

    def __init__(self, answer_after: float | None = None, stuck: bool = False) -> None:
        self.answer_after = answer_after
        self.stuck = stuck
        self.sent = b""
        self.was_reset = False

    async def write(self, data: bytes) -> None:
        if self.stuck:
            await trio.sleep_forever()
        self.sent += data

    async def read(self, n: int = -1) -> bytes:
        if self.answer_after is None:
            await trio.sleep_forever()
        await trio.sleep(self.answer_after)
        return self.sent

    async def reset(self) -> None:
        self.was_reset = True


class Conn:
    def __init__(self) -> None:
        self.muxed_conn = type("Muxed", (), {"peer_id": PEER})()


class Witness:
    """``silent`` answers ``verdict``, or raises it if it is an exception."""

    def __init__(self, verdict: bool | Exception) -> None:
        self.verdict = verdict
        self.asked: list[float] = []
        self.before: list[object] = []
        self.looks = 0

    def state(self, conn: object) -> str:
        if isinstance(self.verdict, Exception):
            raise self.verdict
        self.looks += 1
        return f"look {self.looks}"

    def judge(self, conn: object, state: object, now: float, before: object) -> bool:
        self.asked.append(now)
        self.before.append(before)
        assert isinstance(self.verdict, bool)
        return self.verdict

    def forget(self, live: set[object]) -> None:
        pass


def pinger_with(stream: Stream, witness: Witness) -> tuple[LinkPinger, Conn]:
    conn = Conn()
    network = type("Network", (), {"connections": {PEER: [conn]}})()
    pinger = LinkPinger(network, interval=0.5, timeout=2.0, reuse_streams=True)  # type: ignore[arg-type]
    pinger.clock_offset = 0.0
    pinger.witness = witness  # type: ignore[assignment]
    pinger.early_after = 0.5  # the times below; the default is P2PConfig's
    pinger._streams[conn] = stream  # type: ignore[index]
    return pinger, conn


async def probe(pinger: LinkPinger) -> tuple[bool | None, float]:
    began = trio.current_time()
    answer = await pinger.probe_now(PEER.to_base58())
    return answer, trio.current_time() - began


async def test_a_silent_peer_fails_at_the_early_verdict_and_its_stream_is_reset(
    autojump_clock: trio.abc.Clock,
) -> None:
    stream = Stream()
    witness = Witness(True)
    pinger, _ = pinger_with(stream, witness)
    assert await probe(pinger) == (False, 0.5)
    assert witness.before == ["look 1"]  # judged against the state at the write
    assert stream.was_reset  # a late pong must not answer the next ping
    assert (pinger.failed, pinger.silent) == (1, 1)
    assert pinger._silenced == set() and pinger._streams == {}


@pytest.mark.parametrize(
    ("verdict", "asked"),
    [(False, [0.5, 1.0, 1.5]), (OSError("no TCP_INFO here"), [])],
    ids=["not-silent", "witness-raises"],
)
async def test_without_the_kernels_word_the_ping_waits_its_whole_timeout(
    autojump_clock: trio.abc.Clock, verdict: bool | Exception, asked: list[float]
) -> None:
    witness = Witness(verdict)
    pinger, _ = pinger_with(Stream(), witness)
    assert await probe(pinger) == (False, 2.0)
    assert (pinger.failed, pinger.silent) == (1, 0)
    # Asked every 0.5 s until the timeout, each look against the one before; a witness
    # that raised is not asked again.
    assert witness.asked == asked
    assert witness.before == [f"look {i}" for i in range(1, len(asked) + 1)]


async def test_the_early_clock_starts_once_the_ping_is_written(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Our own write is stuck (flow control, our loop behind): the peer's kernel has
    # nothing to acknowledge yet, so no early verdict.
    witness = Witness(True)
    pinger, _ = pinger_with(Stream(stuck=True), witness)
    assert await probe(pinger) == (False, 2.0)
    assert witness.asked == [] and pinger.silent == 0


async def test_an_answer_before_the_early_verdict_is_an_answer(
    autojump_clock: trio.abc.Clock,
) -> None:
    pinger, _ = pinger_with(Stream(answer_after=0.3), Witness(True))
    assert await probe(pinger) == (True, 0.3)
    assert (pinger.answered, pinger.failed, pinger.silent) == (1, 0, 0)


async def test_a_peer_that_said_it_is_starved_gets_a_longer_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Its digest says its process answers late (HealthDigest.local_health): the kernel's
    # word is no verdict on it, the witness is not asked, and it gets twice the timeout
    # (P2PConfig.ping_patient_factor).
    witness = Witness(True)
    pinger, _ = pinger_with(Stream(), witness)
    pinger.patient = lambda peer: peer == PEER.to_base58()
    assert await probe(pinger) == (False, 4.0)
    assert (pinger.failed, pinger.silent) == (1, 0)
    assert witness.asked == []


@pytest.mark.parametrize("factor", [0.5, 9.0])
def test_the_patient_factor_is_bounded(tmp_path: Path, factor: float) -> None:
    with pytest.raises(P2PError, match="ping_patient_factor"):
        P2PConfig(key_file=tmp_path / "k", ping_patient_factor=factor)
