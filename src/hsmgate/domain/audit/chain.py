"""The audit record and its chain: the hashed fields, their canonical JSON, a record's hash and
the message a checkpoint signs (see the package text)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

OK, ERROR, STARTED = "ok", "error", "started"
#: The fields a record's hash covers, in the order of the export.
HASHED_FIELDS = ("seq", "time", "partition", "principal", "auth_method", "operation", "key_label",
                 "request_id", "outcome", "error_code", "prev_hash")
#: Fields a record's hash covers only when they are not null (added after the first records).
OPTIONAL_HASHED_FIELDS = ("ska_request_id",)
CHECKPOINT_TYPE = "hsmgate-audit-checkpoint"


def canonical_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
