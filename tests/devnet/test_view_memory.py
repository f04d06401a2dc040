"""The view memory measurement (``devnet.view_memory``) measures what it says."""

from __future__ import annotations

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from devnet.cluster_json_cost import filled_view
from devnet.view_memory import envelope_overhead, main, view_bytes, with_statements
from mesh.digest import TOPIC, encode_gossip


def test_the_envelope_overhead_is_that_of_a_real_signed_message() -> None:
    # What py-libp2p's signing fills in for an Ed25519 peer: the same sizes as assumed.
    key = create_new_key_pair().public_key
    real = rpc_pb2.Message(
        from_id=ID.from_pubkey(key).to_bytes(),
        data=b"",
        seqno=(1).to_bytes(8, "big"),
        topicIDs=[TOPIC],
        signature=bytes(64),
        key=key.serialize(),
    )
    assert envelope_overhead() == len(real.SerializeToString())


def test_every_member_gets_a_statement_of_a_real_ones_size() -> None:
    view = filled_view(5)
    with_statements(view)
    for record in view._roster.records.values():
        assert len(record.statement) == len(encode_gossip(record.digest)) + envelope_overhead()


def test_memory_grows_with_the_members_and_counts_the_statements() -> None:
    assert view_bytes(500) > 5 * view_bytes(50)
    # The statements are in: at least their bytes (digest encoding plus envelope) each.
    statement = len(encode_gossip(filled_view(1)._roster.records.popitem()[1].digest))
    kept = view_bytes(200) - view_bytes(200, statements=False)
    assert kept >= 200 * (statement + envelope_overhead())


def test_main_prints_a_row_per_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sizes", "10,20"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 3  # header and two sizes


@pytest.mark.parametrize("sizes", ["ten", "0,10"])
def test_bad_sizes_exit_2(sizes: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--sizes", sizes])
    assert exc.value.code == 2
