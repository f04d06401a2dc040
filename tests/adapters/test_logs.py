from __future__ import annotations

import io
import json
import logging

from adapters.logs import setup_logging


def test_json_lines_carry_level_logger_message_and_extras() -> None:
    stream = io.StringIO()
    setup_logging("json", "info", stream=stream)
    try:
        logging.getLogger("chorus.test").warning(
            "peer %s is %s", "p1", "dead", extra={"peer": "p1"}
        )
        logging.getLogger("chorus.test").debug("not shown at info")
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "warning"
    assert record["logger"] == "chorus.test"
    assert record["message"] == "peer p1 is dead"
    assert record["peer"] == "p1"
    assert record["time"].endswith("Z")


def test_text_lines_are_readable() -> None:
    stream = io.StringIO()
    setup_logging("text", "debug", stream=stream)
    try:
        logging.getLogger("chorus.test").info("hello")
    finally:
        logging.getLogger().handlers.clear()
    assert "INFO    chorus.test: hello" in stream.getvalue()
