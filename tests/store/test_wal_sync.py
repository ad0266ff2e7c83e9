"""The audit log's SQLite groups are answered only once the WAL is on disk (store/wal_sync.py): a
group's futures wait for the fsync, a failed fsync fails them (and is reported), and the writer's
own commits do not fsync."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from hsmgate.store.audit import AuditRepository
from hsmgate.store.database import Database
from hsmgate.store.wal_sync import Group, WalSync
from tests.store.test_audit_group_commit import _build


def test_futures_settle_only_after_the_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = tmp_path / "state.db-wal"
    wal.write_bytes(b"frames")
    gate = threading.Event()
    synced: list[int] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        gate.wait(10)
        real_fsync(fd)
        synced.append(fd)

    monkeypatch.setattr("hsmgate.store.wal_sync.os.fsync", slow_fsync)
    durable: list[Group] = []
    sync = WalSync(str(wal), durable.append, lambda group: None)
    future: Future[dict[str, Any]] = Future()
    sync.submit(Group("p", [(future, {"seq": 1})]))
    assert not future.done() and not durable  # committed, not yet on disk: nobody is answered
    gate.set()
    assert future.result(timeout=10) == {"seq": 1}
    assert synced and [g.partition for g in durable] == ["p"]
    sync.close()


def test_a_failed_fsync_fails_the_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = tmp_path / "state.db-wal"
    wal.write_bytes(b"frames")

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("hsmgate.store.wal_sync.os.fsync", broken)
    failed: list[Group] = []
    sync = WalSync(str(wal), lambda group: None, failed.append)
    future: Future[dict[str, Any]] = Future()
    sync.submit(Group("p", [(future, {"seq": 7})]))
    with pytest.raises(OSError, match="Input/output error"):
        future.result(timeout=10)
    assert [g.records[0][1]["seq"] for g in failed] == [7]
    sync.close()


def test_the_repository_answers_after_its_wal_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    db.migrate()
    calls: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr("hsmgate.store.wal_sync.os.fsync", recording_fsync)
    repository = AuditRepository(db)
    try:
        row = repository.append("g", _build(1))
        assert row["seq"] == 1
        assert calls and all(path.endswith("audit.db-wal") for path in calls)
        synchronous = repository._connection().driver_connection.execute("PRAGMA synchronous").fetchone()[0]
        assert synchronous == 1  # NORMAL: the commit itself does not fsync; WalSync does
    finally:
        repository.close()
        db.dispose()
    reopened = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        assert [r["seq"] for r in AuditRepository(reopened).records("g")] == [1]
    finally:
        reopened.dispose()
