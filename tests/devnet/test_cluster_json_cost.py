"""The /health/cluster cost measurement (``devnet.cluster_json_cost``) measures what it says."""

from __future__ import annotations

import json

import pytest

from devnet.cluster_json_cost import PAGES, filled_view, main, measure
from mesh.cluster_json import cluster_json


def test_the_view_holds_every_member_and_a_page_is_smaller() -> None:
    view = filled_view(300)
    body = cluster_json(view, now=2.0, wall_now=1_700_000_002.0)
    assert len(body["peers"]) == 300 and body["page"] == {"total": 300, "next": None}
    whole, _ = measure(300, PAGES["whole view"], repeats=1)
    paged, _ = measure(300, PAGES["?limit=100"], repeats=1)
    assert len(json.dumps(body).encode()) == whole
    assert paged < whole / 2


def test_main_prints_a_row_per_size_and_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sizes", "20,30"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 2")]
    assert len(rows) == len(PAGES)


def test_bad_sizes_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--sizes", "ten"])
    assert exc.value.code == 2
