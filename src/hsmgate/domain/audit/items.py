"""What a signature record accounts for: one item per signature of a single request or a batch.

A batch of 100 signatures is one chained record per key, not 100: the record's ``items`` field
lists, for each signature in request order, its index in the request, the signature algorithm,
the SHA-256 of the payload (hex), the outcome and the TSB error code. ``items`` is JSON text,
hashed as that text (``chain.py``), so ``audit verify`` checks it byte for byte and a log query can
account for every signature: which key (the record's ``key_label``), which algorithm, which
payload digest, which caller (the record's ``principal``), success or failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hsmgate.domain.audit.chain import ERROR, OK


@dataclass(frozen=True, slots=True)
class AuditItem:
    """One signature of a request, as its record lists it."""

    index: int
    algorithm: str
    payload_sha256: str
    outcome: str
    error_code: int | None = None


def payload_digest(payload: bytes) -> str:
    """SHA-256 (hex) of a payload, as an item names it."""
    return hashlib.sha256(payload).hexdigest()


def items_text(items: Sequence[AuditItem]) -> str:
    """The ``items`` field of a record: a JSON array, one object per item, keys in a fixed order."""
    return orjson.dumps([{"index": item.index, "algorithm": item.algorithm, "payloadSha256": item.payload_sha256,
                          "outcome": item.outcome, "errorCode": item.error_code} for item in items]).decode()


def parse_items(text: str | None) -> list[dict[str, Any]]:
    """The items of a record's ``items`` field (none when it has none)."""
    return [] if not text else list(orjson.loads(text))


def record_outcome(items: Sequence[AuditItem]) -> tuple[str, int | None]:
    """The outcome of a record listing ``items``: ``ok`` when every item succeeded, else ``error``
    with the error code of the first item that failed."""
    for item in items:
        if item.outcome != OK:
            return ERROR, item.error_code
    return OK, None
