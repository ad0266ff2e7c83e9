"""The audit record and its chain: the hashed fields, their canonical JSON, a record's hash and
the message a checkpoint signs (see the package text)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

import orjson

OK, ERROR, STARTED = "ok", "error", "started"
#: The fields a record's hash covers, in the order of the export.
HASHED_FIELDS = ("seq", "time", "partition", "principal", "auth_method", "operation", "key_label",
                 "request_id", "outcome", "error_code", "prev_hash")
#: Fields a record's hash covers only when they are not null (added after the first records).
OPTIONAL_HASHED_FIELDS = ("ska_request_id", "items")
CHECKPOINT_TYPE = "hsmgate-audit-checkpoint"


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Keys sorted, no spaces, UTF-8, no ASCII escaping: byte for byte what ``json.dumps(value,
    sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` gives for the strings, integers
    and nulls of records and checkpoints (``tests/domain/audit`` holds the two against each other),
    in a fraction of its time."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def hashed_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a record's hash covers: :data:`HASHED_FIELDS`, and the optional ones when set."""
    values = {name: record[name] for name in HASHED_FIELDS}
    values.update({name: record[name] for name in OPTIONAL_HASHED_FIELDS if record.get(name) is not None})
    return values


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the record's hashed fields."""
    return hashlib.sha256(canonical_json(hashed_values(record))).hexdigest()


def checkpoint_message(*, partition: str, seq: int, hash: str, time: str) -> bytes:
    return canonical_json({"type": CHECKPOINT_TYPE, "partition": partition, "seq": seq, "hash": hash, "time": time})


class _SecondText:
    """The text of the current second, formatted once per second rather than once per record."""

    __slots__ = ("second", "text")

    def __init__(self, second: int) -> None:
        self.second = second
        self.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


_last_second = _SecondText(0)


def now_text() -> str:
    """UTC now as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (microseconds), the form records keep."""
    global _last_second
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    cached = _last_second
    if cached.second != seconds:
        cached = _last_second = _SecondText(seconds)
    return f"{cached.text}.{nanoseconds // 1000:06d}Z"
