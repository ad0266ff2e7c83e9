"""Log output of ``hsmgate serve``: one record per line, whatever the logged values contain.

Log messages carry values from callers: a path, a JWT ``sub``, a key label, an exception's text.
A line feed in one of them would start a forged record (``… INFO hsmgate.audit: ok``), an ANSI
escape would rewrite the operator's terminal, a bidi override would reverse what is shown. So:

* ``HSMGATE_LOG_FORMAT=text`` (default): ``<time> <LEVEL> <logger>: <message>`` with every control,
  format and line-separator character of the message written as an escape (``\\n``, ``\\x1b``,
  ``\\u202e``; :func:`hsmgate.domain.text.escape_unsafe`). A traceback follows on lines of its own,
  each prefixed with ``  | `` and escaped, so no line of it can pass for a record.
* ``HSMGATE_LOG_FORMAT=json``: one JSON object per line, ``{"time", "level", "logger", "message"}``
  plus ``worker`` (in ``--workers`` mode) and ``exception`` when there is one; the same escaping.

:func:`configure_logging` installs one of them on the root logger; uvicorn's own loggers are left
without handlers (``uvicorn.Config(log_config=None)``) and reach it too.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from hsmgate.domain.text import escape_unsafe

LogFormat = Literal["text", "json"]

#: Prefix of each line of a traceback or stack in text logs.
CONTINUATION = "  | "


def _block(text: str) -> list[str]:
    """The lines of a traceback (split at ``\n`` only), each escaped: a line feed inside an
    exception's message starts a new, prefixed line; any other separator is escaped."""
    return [escape_unsafe(line) for line in text.rstrip("\n").split("\n")]


class EscapingFormatter(logging.Formatter):
    """``logging.Formatter`` whose message is escaped and whose traceback lines are prefixed."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_unsafe(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        blocks = []
        if record.exc_info:
            blocks.append(self.formatException(record.exc_info))
        elif record.exc_text:
            blocks.append(record.exc_text)
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        for block in blocks:
            line += "".join(f"\n{CONTINUATION}{text}" for text in _block(block))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record (``json.dumps`` also escapes any control character left)."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": escape_unsafe(record.getMessage()),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        if record.exc_info:
            entry["exception"] = "\n".join(_block(self.formatException(record.exc_info)))
        if record.stack_info:
            entry["stack"] = "\n".join(_block(self.formatStack(record.stack_info)))
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: LogFormat, worker: int | None = None) -> logging.Formatter:
    """The formatter of ``HSMGATE_LOG_FORMAT``; ``worker``: the worker index in ``--workers`` mode."""
    if log_format == "json":
        return JsonFormatter(worker)
    name = "%(name)s" if worker is None else f"%(name)s[w{worker}]"
    return EscapingFormatter(f"%(asctime)s %(levelname)s {name}: %(message)s")


#: Name of the handler :func:`configure_logging` installs (a second call replaces it).
HANDLER_NAME = "hsmgate"


def configure_logging(level: str, log_format: LogFormat, worker: int | None = None) -> None:
    """One stderr handler with :func:`formatter` on the root logger. Other handlers stay (a
    test runner's capture, say); uvicorn is run with ``log_config=None`` so it adds none."""
    handler = logging.StreamHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter(log_format, worker))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python warnings as records of "py.warnings", formatted alike
