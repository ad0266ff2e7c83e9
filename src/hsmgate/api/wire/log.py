"""DTOs of the partition log: ``GET /v1/hsm/log`` (the TSB's ``HsmLogDto``) and hsmgate's
``GET /v1/hsm/log/records`` (docs/security.md)."""

from __future__ import annotations

from pydantic import BaseModel, JsonValue


class HsmLog(BaseModel):
    """The TSB's ``HsmLogDto``: here the partition's last audit records, one line each
    (``HSMGATE_HSM_LOG_LINES``, default 1000; docs/security.md)."""

    log: str


class LogRecordDto(BaseModel):
    """One audit record: its position in the partition's chain, its hash, and the fields the hash
    covers, as hashed (SHA-256 of their canonical JSON: docs/security.md); any JSON value, so a field
    added to the record passes as it is hashed."""

    seq: int
    hash: str
    record: dict[str, JsonValue]


class LogRecordsDto(BaseModel):
    """A page of audit records in chain order; ``next`` is the ``after`` of the next page (null: the last)."""

    records: list[LogRecordDto]
    next: int | None
