"""The audit repository group-commits: records queued while a transaction runs share the next one."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from hsmgate.domain.audit.chain import record_hash
from hsmgate.store.audit import AuditRepository
from hsmgate.store.database import Database


def _build(n: int):  # type: ignore[no-untyped-def]
    def build(seq: int, prev_hash: str) -> tuple[dict[str, Any], str]:
        values = {"time": "2026-11-30T00:00:00Z", "principal": f"p{n}", "auth_method": "test", "operation": "op",
                  "key_label": None, "request_id": str(n), "outcome": "ok", "error_code": None,
                  "ska_request_id": None}
        return values, record_hash({**values, "partition": "g", "seq": seq, "prev_hash": prev_hash})
    return build


def test_records_queued_behind_a_transaction_are_written_in_one_commit(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    db.migrate()
    repository = AuditRepository(db)
    repository.append("g", _build(0))  # creates the chain head
    groups: list[int] = []  # records per committed transaction
    repository.add_listener(lambda _partition, rows: groups.append(len(rows)))
    results: list[dict[str, Any]] = []
    with repository._writer_lock:  # a transaction "in progress": five callers queue behind it
        threads = [threading.Thread(target=lambda n=n: results.append(repository.append("g", _build(n))))
                   for n in range(1, 6)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(repository._queue) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=10)
    assert groups == [5]
    assert sorted(row["seq"] for row in results) == [2, 3, 4, 5, 6]
    chain = list(repository.records("g"))
    assert [row["seq"] for row in chain] == [1, 2, 3, 4, 5, 6]
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in zip(chain, chain[1:]))


def test_a_failed_group_fails_every_caller_in_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    db.migrate()
    repository = AuditRepository(db)

    def broken(seq: int, prev_hash: str) -> tuple[dict[str, Any], str]:
        raise OSError("disk full")

    try:
        repository.append("g", broken)
    except OSError as exc:
        assert "disk full" in str(exc)
    else:
        raise AssertionError("the failed append returned")
    repository.append("g", _build(1))
    assert [row["seq"] for row in repository.records("g")] == [1]
