"""The partition log a service caller reads (``GET /v1/hsm/log`` and ``/v1/hsm/log/records``),
answered from the audit chain.

Two views of the same records:

* :meth:`AuditLog.text`: the TSB's ``{"log": "…"}``, the last ``lines`` records of the partition's
  chain as one text line each (``time seq=… field=value … hash=…``), oldest first;
* :meth:`AuditLog.page`: a filtered, cursor-paged query; each record comes with its position in
  the chain (``seq``), its ``hash`` and the fields that hash covers exactly as hashed, so a client
  recomputes the hash (``chain.py``: SHA-256 of the canonical JSON) and checks each ``prev_hash``.

The record's fields are whatever the chain hashes (:func:`~hsmgate.domain.audit.chain.hashed_values`),
not a list of its own: a field added to the record appears here, hashed as it is hashed. A record
holds no payload, signature, password or key material (``audit/__init__.py``), so neither view does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hsmgate.domain.audit.chain import hashed_values
from hsmgate.store.audit import AuditRepository

#: Most records one page may hold; the default page size.
MAX_PAGE, DEFAULT_PAGE = 1000, 100
#: Fields a text line shows first, without their name.
_LEADING = ("time",)
#: Fields a text line leaves out: the partition is the caller's, ``prev_hash`` is the line before's ``hash``.
_OMITTED = frozenset({"partition", "prev_hash"})


_EARLIEST, _LATEST = "0000-00-00T00:00:00.000000Z", "9999-99-99T99:99:99.999999Z"


@dataclass(frozen=True, slots=True)
class LogQuery:
    """What a page selects: records after ``after`` (a ``seq``), at most ``limit``, with
    ``time_from <= time < time_to`` and the exact key name, operation and caller (principal) given."""

    after: int = 0
    limit: int = DEFAULT_PAGE
    time_from: datetime | None = None
    time_to: datetime | None = None
    key_name: str | None = None
    operation: str | None = None
    caller: str | None = None


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record: its chain position, its hash and the fields the hash covers."""

    seq: int
    hash: str
    fields: dict[str, object]  # JSON values, as hashed


@dataclass(frozen=True, slots=True)
class LogPage:
    """Records in chain order; ``next_after`` is the cursor of the next page (None: none left)."""

    records: list[LogRecord]
    next_after: int | None


def audit_time(moment: datetime) -> str:
    """``moment`` as the chain writes times (``chain.now_text``); a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # an offset took it past year 1 or 9999: before or after every record
        return _EARLIEST if moment.year == datetime.min.year else _LATEST
    # isoformat pads the year to four digits (strftime's %Y need not), so the text sorts as time
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _text_value(value: object) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if not text or any(c.isspace() or c in '="' for c in text) else text


def text_line(row: Mapping[str, Any]) -> str:
    """One record as a log line: its time, then ``name=value`` for each other hashed field that is set
    (a value with a space, ``=`` or ``"`` is JSON-quoted), then its ``hash``."""
    fields = hashed_values(row)
    parts = [str(fields[name]) for name in _LEADING]
    parts += [f"{name}={_text_value(value)}" for name, value in fields.items()
              if name not in _LEADING and name not in _OMITTED and value is not None]
    parts.append(f"hash={row['hash']}")
    return " ".join(parts)


class AuditLog:
    """Reads one partition's audit chain for the service role (module text)."""

    def __init__(self, repository: AuditRepository, partition: str, *, text_lines: int) -> None:
        self._repository = repository
        self._partition = partition
        self._text_lines = text_lines

    def text(self) -> str:
        """The last records of the chain, one line each, oldest first ("" for an empty chain)."""
        return "\n".join(text_line(row) for row in self._repository.last(self._partition, self._text_lines))

    def page(self, query: LogQuery) -> LogPage:
        """The records ``query`` selects (at most ``query.limit``, which is 1 to :data:`MAX_PAGE`)."""
        if not 1 <= query.limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}")
        rows = self._repository.find(
            self._partition, after=query.after, limit=query.limit,
            time_from=audit_time(query.time_from) if query.time_from is not None else None,
            time_to=audit_time(query.time_to) if query.time_to is not None else None,
            key_label=query.key_name, operation=query.operation, principal=query.caller)
        records = [LogRecord(seq=row["seq"], hash=row["hash"], fields=hashed_values(row)) for row in rows]
        full = len(records) == query.limit
        return LogPage(records, records[-1].seq if full else None)
