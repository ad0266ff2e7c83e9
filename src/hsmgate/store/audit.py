"""Repository of the audit chain: append under a database lock, read in chain order, checkpoints.

Concurrency. A chain must have exactly one successor per record, across the threads of one
process *and* across processes sharing the database. :meth:`AuditRepository.append` therefore
holds the database's write lock for the partition's chain head from reading the head to
committing the new record:

Within a process, appends are group-committed: records queued while a transaction is running are
written together by the next one (one commit for many requests; each caller returns after its own
record is committed, so nothing acknowledged is lost on a crash).

* SQLite: ``BEGIN IMMEDIATE`` takes the database write lock before the head is read (a deferred
  transaction could read a head another process is about to replace). Appenders first queue on a
  thread lock and an ``flock`` on ``<database>.audit.lock``: SQLite's busy handler *sleeps* (up to
  100 ms a round) while another process holds the write lock, which made four processes appending
  at once 40 times slower than one (measured: 100 appends 7 s instead of 0.2 s); a blocked flock
  wakes as soon as the lock is free.
* PostgreSQL: ``SELECT … FROM audit_chain_heads WHERE partition = … FOR UPDATE`` locks the head
  row of that partition only; other partitions' chains append in parallel. The row is created
  beforehand with ``INSERT … ON CONFLICT DO NOTHING`` so two first appends cannot both miss it.

The unique constraint on (partition, seq) is the backstop: a second record at the same position
fails to insert instead of forking the chain. How a record is hashed is not this module's business:
the caller passes a function that turns (seq, previous hash) into the row's values and hash.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hsmgate.store.database import Database
from hsmgate.store.models import AuditChainHead, AuditCheckpointRow, AuditRecordRow

#: prev_hash of the first record of every chain.
GENESIS_HASH = "0" * 64

#: Column order of a record row as read by :meth:`AuditRepository.records`.
RECORD_COLUMNS = ("partition", "seq", "time", "principal", "auth_method", "operation", "key_label",
                  "request_id", "outcome", "error_code", "prev_hash", "hash", "ska_request_id")
CHECKPOINT_COLUMNS = ("partition", "seq", "hash", "time", "key_name", "signature")


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str


class _Pending:
    """One caller's record waiting for the group commit that writes it."""

    __slots__ = ("build", "done", "_row", "_error")

    def __init__(self, build: Callable[[int, str], tuple[dict[str, Any], str]]) -> None:
        self.build = build
        self.done = False
        self._row: dict[str, Any] | None = None
        self._error: BaseException | None = None

    def finish(self, *, row: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        self._row, self._error, self.done = row, error, True

    def result(self) -> dict[str, Any]:
        if self._error is not None:
            raise self._error
        if self._row is None:
            raise RuntimeError("audit record was not written")
        return self._row


class AuditRepository:
    """The audit tables of one database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sqlite = db.engine.dialect.name == "sqlite"
        self._writer_lock = threading.Lock()  # one transaction at a time from this process
        self._queue_lock = threading.Lock()
        self._queues: dict[str, list[_Pending]] = {}
        self._lock_path: str | None = None
        path = db.engine.url.database if self._sqlite else None
        if path and path != ":memory:" and not path.startswith("file:"):
            self._lock_path = f"{path}.audit.lock"
        self._lock_fd: int | None = None
        self._heads_known: set[str] = set()  # partitions whose head row exists (rows are never deleted)

    # -- writing -----------------------------------------------------------------------------

    def append(self, partition: str, build: Callable[[int, str], tuple[dict[str, Any], str]]) -> dict[str, Any]:
        """Append one record to ``partition``'s chain. ``build(seq, prev_hash)`` returns the
        record's column values (without seq/prev_hash/hash) and its hash. Returns the stored row
        once it is committed.

        Group commit: callers queue their record; whoever holds the writer lock writes every queued
        record of the partition in one transaction, so under load one commit (one fsync) covers many
        requests, and each caller still returns only after its own record is durable."""
        pending = _Pending(build)
        with self._queue_lock:
            self._queues.setdefault(partition, []).append(pending)
        with self._writer_lock:
            if not pending.done:
                with self._queue_lock:
                    batch, self._queues[partition] = self._queues[partition], []
                try:
                    rows = self._locked_append(partition, [p.build for p in batch])
                except Exception as exc:  # every record of the failed transaction is unwritten
                    for item in batch:
                        item.finish(error=exc)
                else:
                    for item, row in zip(batch, rows, strict=True):
                        item.finish(row=row)
        return pending.result()

    def _locked_append(self, partition: str,
                       builds: list[Callable[[int, str], tuple[dict[str, Any], str]]]) -> list[dict[str, Any]]:
        if not self._sqlite:
            return self._append(partition, builds)
        fd = self._file_lock()
        if fd is None:
            return self._append(partition, builds)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            return self._append(partition, builds)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _file_lock(self) -> int | None:
        """The lock file's descriptor (opened once; called under the writer lock)."""
        if self._lock_path is not None and self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._lock_fd

    def close(self) -> None:
        with self._writer_lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _append(self, partition: str,
                builds: list[Callable[[int, str], tuple[dict[str, Any], str]]]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        with self._db.engine.connect() as conn:
            head = self._lock_head(conn, partition)
            seq, prev = head.seq, head.hash
            for build in builds:
                seq += 1
                values, digest = build(seq, prev)
                rows.append({**values, "partition": partition, "seq": seq, "prev_hash": prev, "hash": digest})
                prev = digest
            conn.execute(insert(AuditRecordRow), rows)
            conn.execute(update(AuditChainHead).where(AuditChainHead.partition == partition)
                         .values(seq=seq, hash=prev))
            conn.commit()
        self._heads_known.add(partition)
        return rows

    def _lock_head(self, conn: Connection, partition: str) -> Head:
        table = AuditChainHead.__table__
        new_head = {"partition": partition, "seq": 0, "hash": GENESIS_HASH}
        if self._sqlite:
            driver = conn.connection.driver_connection
            if not getattr(driver, "in_transaction", False):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            if partition not in self._heads_known:
                conn.execute(sqlite.insert(table).values(**new_head).on_conflict_do_nothing())
            statement = select(AuditChainHead.seq, AuditChainHead.hash).where(AuditChainHead.partition == partition)
        else:
            if partition not in self._heads_known:
                conn.execute(postgresql.insert(table).values(**new_head).on_conflict_do_nothing())
            statement = (select(AuditChainHead.seq, AuditChainHead.hash)
                         .where(AuditChainHead.partition == partition).with_for_update())
        seq, digest = conn.execute(statement).one()
        return Head(seq, digest)

    def add_checkpoint(self, values: dict[str, Any]) -> bool:
        """Store a checkpoint; False when the partition already has one at that seq."""
        table = AuditCheckpointRow.__table__
        dialect_insert = sqlite.insert if self._sqlite else postgresql.insert
        with self._db.engine.begin() as conn:
            result = conn.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())
            return bool(result.rowcount)

    # -- reading -----------------------------------------------------------------------------

    def head(self, partition: str) -> Head:
        with self._db.session() as session:
            row = session.execute(select(AuditChainHead.seq, AuditChainHead.hash)
                                  .where(AuditChainHead.partition == partition)).one_or_none()
        return Head(row.seq, row.hash) if row else Head(0, GENESIS_HASH)

    def partitions(self) -> list[str]:
        """Partitions with at least one record (or checkpoint), sorted."""
        with self._db.session() as session:
            names = set(session.scalars(select(AuditRecordRow.partition).distinct()))
            names |= set(session.scalars(select(AuditCheckpointRow.partition).distinct()))
            names |= set(session.scalars(select(AuditChainHead.partition)))
        return sorted(names)

    def records(self, partition: str, *, after: int = 0, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Records of a partition in ``seq`` order (as stored: verification is the caller's job)."""
        columns = [getattr(AuditRecordRow, c) for c in RECORD_COLUMNS]
        last = after
        while True:
            with self._db.session() as session:
                rows = session.execute(select(*columns).where(AuditRecordRow.partition == partition,
                                                              AuditRecordRow.seq > last)
                                       .order_by(AuditRecordRow.seq).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                yield dict(zip(RECORD_COLUMNS, row, strict=True))
            last = rows[-1].seq

    def checkpoints(self, partition: str) -> list[dict[str, Any]]:
        columns = [getattr(AuditCheckpointRow, c) for c in CHECKPOINT_COLUMNS]
        with self._db.session() as session:
            rows = session.execute(select(*columns).where(AuditCheckpointRow.partition == partition)
                                   .order_by(AuditCheckpointRow.seq)).all()
        return [dict(zip(CHECKPOINT_COLUMNS, row, strict=True)) for row in rows]

    def last_checkpoint_seq(self, partition: str) -> int:
        with self._db.session() as session:
            value = session.scalar(select(func.max(AuditCheckpointRow.seq))
                                   .where(AuditCheckpointRow.partition == partition))
        return int(value or 0)
