"""The audit repository's queries behind ``/v1/hsm/log``: filters, cursor and the last records, on SQLite
and PostgreSQL (``tests/store/conftest.py``), each partition's chain apart from the others."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hsmgate.domain.audit.chain import record_hash
from hsmgate.store.audit import AuditRepository
from hsmgate.store.database import Database

Build = Callable[[int, str], tuple[dict[str, Any], str]]


def build(partition: str, time: str, principal: str, operation: str, key_label: str | None) -> Build:
    def make(seq: int, prev_hash: str) -> tuple[dict[str, Any], str]:
        values = {"time": time, "principal": principal, "auth_method": "test", "operation": operation,
                  "key_label": key_label, "request_id": f"r{seq}", "outcome": "ok", "error_code": None,
                  "ska_request_id": None}
        return values, record_hash({**values, "partition": partition, "seq": seq, "prev_hash": prev_hash})
    return make


def fill(repository: AuditRepository) -> None:
    for day in range(1, 10):  # records 1..9 of "p", one a day; "q" holds one record of its own
        repository.append("p", build("p", f"2026-12-0{day}T00:00:00.000000Z", "alice" if day % 2 else "bob",
                                     "synchronousSign" if day % 3 else "createKey", f"k{day % 2}"))
    repository.append("q", build("q", "2026-12-05T00:00:00.000000Z", "alice", "synchronousSign", "k1"))


def seqs(rows: list[dict[str, Any]]) -> list[int]:
    return [row["seq"] for row in rows]


def test_filters_and_cursor(database: Database) -> None:
    repository = AuditRepository(database)
    fill(repository)
    assert seqs(repository.find("p", limit=100)) == list(range(1, 10))
    assert seqs(repository.find("p", after=3, limit=2)) == [4, 5]
    assert seqs(repository.find("p", principal="alice", limit=100)) == [1, 3, 5, 7, 9]
    assert seqs(repository.find("p", operation="createKey", limit=100)) == [3, 6, 9]
    assert seqs(repository.find("p", key_label="k0", operation="synchronousSign", limit=100)) == [2, 4, 8]
    assert seqs(repository.find("p", time_from="2026-12-03T00:00:00.000000Z",
                                time_to="2026-12-06T00:00:00.000000Z", limit=100)) == [3, 4, 5]
    assert seqs(repository.find("q", limit=100)) == [1]
    assert repository.find("p", principal="nobody", limit=100) == []
    row = repository.find("p", after=8, limit=1)[0]
    assert row["hash"] == record_hash(row) and row["partition"] == "p"


def test_last_records_in_chain_order(database: Database) -> None:
    repository = AuditRepository(database)
    assert repository.last("p", 3) == []
    fill(repository)
    assert seqs(repository.last("p", 3)) == [7, 8, 9]
    assert seqs(repository.last("p", 100)) == list(range(1, 10))
    assert seqs(repository.last("q", 5)) == [1]
