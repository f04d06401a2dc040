"""devnet/wake_cost.py: bad arguments are refused with argparse's exit code 2."""

from __future__ import annotations

import pytest

from devnet.wake_cost import main


@pytest.mark.parametrize(
    "argv",
    [["--tasks", "0"], ["--tasks", "1001"], ["--period", "0"], ["--seconds", "-1"]],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "must be" in capsys.readouterr().err
