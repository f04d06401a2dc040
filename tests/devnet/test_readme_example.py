"""The README's simulation example is tests/sim/test_example.py, so CI runs what users copy."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_simulation_example_is_the_tested_one() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Write your own simulation") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the section has no python example"
    tested = (ROOT / "tests/sim/test_example.py").read_text()
    # The tested file adds only its docstring and the __future__ import on top.
    assert tested.endswith(match.group(1)), "README example and tests/sim/test_example.py differ"
