"""Log lines cannot be forged through logged values: the text formatter escapes control, format
and line-separator characters and prefixes traceback lines; the JSON formatter writes one object
per line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from hsmgate.domain.text import escape_unsafe, unsafe_character
from hsmgate.log_format import CONTINUATION, configure_logging

FORGED = "alice\n2026-01-01 00:00:00,000 INFO hsmgate.audit: forged\r\x1b[2J\u202egnp.exe\u2028end"


@pytest.fixture()
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    logger = logging.getLogger("hsmgate.test.logformat")
    root = logging.getLogger()
    level = root.level
    yield io.StringIO(), logger
    for handler in [h for h in root.handlers if h.get_name() == "hsmgate"]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def configured(stream: io.StringIO, log_format: str, worker: int | None = None) -> None:
    configure_logging("info", log_format, worker)  # type: ignore[arg-type]
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "hsmgate")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)


def test_text_records_stay_on_one_line(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = captured
    configured(stream, "text")
    logger.warning("refused %s: %s", FORGED, "lacks the role")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "alice\\n2026-01-01" in lines[0] and "\\x1b[2J" in lines[0] and "\\u202egnp.exe" in lines[0]
    assert "\\u2028end" in lines[0] and "\\r" in lines[0]
    assert unsafe_character(lines[0]) is None


def test_text_tracebacks_are_prefixed(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = captured
    configured(stream, "text", worker=1)
    try:
        raise ValueError(FORGED)
    except ValueError:
        logger.exception("unexpected error")
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("ERROR hsmgate.test.logformat[w1]: unexpected error")
    assert rest and all(line.startswith(CONTINUATION) for line in rest), rest
    assert f"{CONTINUATION}ValueError: alice" in rest
    assert f"{CONTINUATION}2026-01-01 00:00:00,000 INFO hsmgate.audit: forged\\r\\x1b[2J\\u202egnp.exe\\u2028end" in rest


def test_json_records_are_one_object_per_line(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = captured
    configured(stream, "json", worker=0)
    logger.warning("refused %s", FORGED)
    try:
        raise RuntimeError(FORGED)
    except RuntimeError:
        logger.exception("boom")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    record, failure = (json.loads(line) for line in lines)
    assert set(record) == {"time", "level", "logger", "message", "worker"}
    assert record["level"] == "WARNING" and record["logger"] == "hsmgate.test.logformat" and record["worker"] == 0
    assert record["message"] == "refused " + escape_unsafe(FORGED)
    assert "\n" not in record["message"] and unsafe_character(record["message"]) is None
    assert failure["message"] == "boom" and "RuntimeError: alice\n2026-01-01" in failure["exception"]
    assert unsafe_character(failure["exception"].replace("\n", "")) is None


def test_escape_leaves_text_alone() -> None:
    for text in ("plain", "Schl\u00fcssel caf\u00e9 \u65e5\u672c", "tab-free \u00a0nbsp"):
        assert escape_unsafe(text) == text
    assert escape_unsafe("a\tb\x00c\x7f\x85\u200b\U000e0001") == "a\\tb\\x00c\\x7f\\x85\\u200b\\U000e0001"
