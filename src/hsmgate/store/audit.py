"""Repository of the audit chain: append under a database lock, read in chain order, checkpoints.

Writing. :meth:`AuditRepository.submit` queues a record and returns a future; whoever writes the
queue writes every record queued so far, one transaction per partition, so under load one commit
(one fsync) covers many requests (group commit). The future resolves only once that transaction
has committed, so a caller that waits for it before answering never acknowledges a record a crash
could lose. Three ways to have the queue written: :meth:`~AuditRepository.wait` (blocking: the
caller writes it unless a transaction is already writing its record), :meth:`~AuditRepository.write`
(now, in this thread — the event loop on SQLite, ``api/execution.py``) and
:meth:`~AuditRepository.write_soon` (the repository's writer thread, for an event loop that must
not wait on a network database). The statements run on one kept DBAPI connection, not through the
ORM: on the event loop the ORM's overhead would be most of the cost.

Concurrency. A chain must have exactly one successor per record, across the threads of one
process *and* across processes sharing the database. Each transaction therefore holds the
database's write lock for the partition's chain head from reading the head to committing:

* SQLite: ``BEGIN IMMEDIATE`` takes the database write lock before the head is read (a deferred
  transaction could read a head another process is about to replace). Writers first queue on a
  thread lock and an ``flock`` on ``<database>.audit.lock``: SQLite's busy handler *sleeps* (up to
  100 ms a round) while another process holds the write lock, which made several processes
  appending at once many times slower than one (``bench/results/design-measurements.md``); a
  blocked flock wakes as soon as the lock is free.
* PostgreSQL: ``SELECT … FROM audit_chain_heads WHERE partition = … FOR UPDATE`` locks the head
  row of that partition only; other partitions' chains append in parallel. The row is created
  beforehand with ``INSERT … ON CONFLICT DO NOTHING`` so two first appends cannot both miss it.

The unique constraint on (partition, seq) is the backstop: a second record at the same position
fails to insert instead of forking the chain. How a record is hashed is not this module's business:
the caller passes a function that turns (seq, previous hash) into the row's values and hash.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, select

from hsmgate.store.database import Database
from hsmgate.store.models import AuditChainHead, AuditCheckpointRow, AuditRecordRow
from hsmgate.store.wal_sync import Group, WalSync

log = logging.getLogger("hsmgate.audit")
T = TypeVar("T")

#: ``build(seq, prev_hash)`` → (the record's column values, its hash): how the caller makes a record
#: once its place in the chain is known.
Build = Callable[[int, str], tuple[dict[str, Any], str]]

#: prev_hash of the first record of every chain.
GENESIS_HASH = "0" * 64

#: Column order of a record row as read by :meth:`AuditRepository.records`.
RECORD_COLUMNS = ("partition", "seq", "time", "principal", "auth_method", "operation", "key_label",
                  "request_id", "outcome", "error_code", "prev_hash", "hash", "ska_request_id", "items")
CHECKPOINT_COLUMNS = ("partition", "seq", "hash", "time", "key_name", "signature")
INTEGER_COLUMNS = frozenset({"seq", "error_code"})
#: Columns a record's values may leave out (null).
_OPTIONAL_NULL = {"ska_request_id": None, "items": None}
#: A row's values in RECORD_COLUMNS order (the INSERT's parameters).
_record_values = itemgetter(*RECORD_COLUMNS)


class AuditObserver(Protocol):
    """Watches the queue and its group commits (``hsmgate/metrics.py``); called on the hot path."""

    def queued(self, records: int) -> None:
        """``records`` were submitted."""

    def committed(self, records: int, seconds: float) -> None:
        """A group commit of ``records`` took ``seconds`` (from the chain head's lock to the commit)."""

    def failed(self, records: int) -> None:
        """A group commit of ``records`` failed: they are not written."""


class _Unobserved:
    def queued(self, records: int) -> None:
        return None

    def committed(self, records: int, seconds: float) -> None:
        return None

    def failed(self, records: int) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str


def _statements(sqlite_dialect: bool) -> dict[str, str]:
    """The writer's SQL, in the driver's parameter style (sqlite3: ``?``, psycopg: ``%s``)."""
    records, heads = AuditRecordRow.__tablename__, AuditChainHead.__tablename__
    lock = "" if sqlite_dialect else " FOR UPDATE"  # SQLite: BEGIN IMMEDIATE has locked the database
    conflict = "ON CONFLICT (partition) DO NOTHING"
    sql = {
        "new_head": f"INSERT INTO {heads} (partition, seq, hash) VALUES (?, 0, ?) {conflict}",
        "lock_head": f"SELECT seq, hash FROM {heads} WHERE partition = ?{lock}",
        "insert": f"INSERT INTO {records} ({', '.join(RECORD_COLUMNS)}) VALUES ({', '.join('?' * len(RECORD_COLUMNS))})",
        "move_head": f"UPDATE {heads} SET seq = ?, hash = ? WHERE partition = ?",
        "insert_arrays": f"INSERT INTO {records} ({', '.join(RECORD_COLUMNS)}) SELECT * FROM unnest("
                         + ", ".join(f"?::{'int' if c in INTEGER_COLUMNS else 'text'}[]" for c in RECORD_COLUMNS) + ")",
        "checkpoint": f"INSERT INTO {AuditCheckpointRow.__tablename__} ({', '.join(CHECKPOINT_COLUMNS)}) "
                      f"VALUES ({', '.join('?' * len(CHECKPOINT_COLUMNS))}) ON CONFLICT (partition, seq) DO NOTHING "
                      "RETURNING seq",
    }
    return sql if sqlite_dialect else {name: text.replace("?", "%s") for name, text in sql.items()}


class _Pending:
    """One record waiting for the group commit that writes it."""

    __slots__ = ("build", "future", "partition")

    def __init__(self, partition: str, build: Build) -> None:
        self.partition = partition
        self.build = build
        self.future: Future[dict[str, Any]] = Future()
        self.future.set_running_or_notify_cancel()  # a waiter that gives up cannot cancel the write


class AuditRepository:
    """The audit tables of one database."""

    def __init__(self, db: Database, observer: AuditObserver | None = None) -> None:
        self._db = db
        self._observer: AuditObserver = observer if observer is not None else _Unobserved()
        self._sqlite = db.engine.dialect.name == "sqlite"
        #: Writes are local and short (an SQLite file, one fsync), fine to run on
        #: an event loop; else (a network database) :meth:`write_soon` is the way not to block.
        self.local = self._sqlite
        #: one transaction at a time from this process (re-entered by a listener adding a checkpoint)
        self._writer_lock = threading.RLock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._wake = threading.Condition(self._queue_lock)  # the background writer's doorbell
        self._write_requested = False
        self._writer: threading.Thread | None = None
        self._closed = False
        self._listeners: list[Callable[[str, list[dict[str, Any]]], None]] = []
        self._failure_listeners: list[Callable[[str, range], None]] = []
        self._lock_path: str | None = None
        path = db.engine.url.database if self._sqlite else None
        if path and path != ":memory:" and not path.startswith("file:"):
            self._lock_path = f"{path}.audit.lock"
        self._lock_fd: int | None = None
        self._heads_known: set[str] = set()  # partitions whose head row exists (rows are never deleted)
        self._conn: Any = None  # the writer's DBAPI connection (under the writer lock)
        self._sql = _statements(self._sqlite)
        #: SQLite on a file: groups are made durable by a thread of their own (``store/wal_sync.py``)
        self._wal_sync = WalSync(f"{path}-wal", self._durable, self._sync_failed) \
            if self._lock_path is not None else None

    # -- writing -----------------------------------------------------------------------------

    def submit(self, partition: str, build: Build) -> Future[dict[str, Any]]:
        """Queue one record for ``partition``'s chain; nothing is written yet. ``build(seq,
        prev_hash)`` returns the record's column values (without seq/prev_hash/hash) and its hash,
        called when the record's place in the chain is known. The future resolves with the stored
        row once its transaction has committed, or with the exception that stopped it; someone
        must write the queue: :meth:`wait`, :meth:`write` or :meth:`write_soon`."""
        pending = _Pending(partition, build)
        with self._queue_lock:
            self._queue.append(pending)
        self._observer.queued(1)
        return pending.future

    def append(self, partition: str, build: Build) -> dict[str, Any]:
        """Append one record and return its stored row once it is committed (:meth:`submit`
        then :meth:`wait`)."""
        future = self.submit(partition, build)
        self.wait(future)
        return future.result()

    def wait(self, future: Future[dict[str, Any]]) -> None:
        """Block until ``future`` (of :meth:`submit`) is settled: written by the transaction
        running now, else by this thread, with every record queued meanwhile (group commit)."""
        while not future.done():
            with self._writer_lock:
                if not future.done():
                    self._write_queue()
            if not future.done() and self._wal_sync is not None:
                self._wal_sync.flush()  # committed, not yet durable: fsync here rather than wait

    def write(self) -> None:
        """Write every queued record now, in this thread: one transaction per partition."""
        with self._writer_lock:
            self._write_queue()

    def write_soon(self) -> None:
        """Have this repository's writer thread (started on first use) write the queue, for
        callers that must not block (an event loop waiting on a network database)."""
        with self._queue_lock:
            closed = self._closed
            if not closed:
                self._write_requested = True
                if self._writer is None or not self._writer.is_alive():
                    self._writer = threading.Thread(target=self._write_in_background,
                                                    name="hsmgate-audit-writer", daemon=True)
                    self._writer.start()
                self._wake.notify()
        if closed:  # no writer thread any more (shutting down): write here
            self.write()

    def add_listener(self, listener: Callable[[str, list[dict[str, Any]]], None]) -> None:
        """Call ``listener(partition, rows)`` after each committed group, once every waiter of the
        group has its answer (in the writing thread; on an SQLite file, in the thread that made the
        group durable: ``store/wal_sync.py``); exceptions are logged."""
        self._listeners.append(listener)

    def add_failure_listener(self, listener: Callable[[str, range], None]) -> None:
        """Call ``listener(partition, seqs)`` after a group's transaction failed once its records had
        their places in the chain: ``seqs`` were assigned, and the records may or may not have been
        committed (a connection lost during the commit leaves that unknown). In the writing thread;
        exceptions are logged."""
        self._failure_listeners.append(listener)

    def _write_in_background(self) -> None:
        while True:
            with self._queue_lock:
                while not self._write_requested and not self._closed:
                    self._wake.wait()
                if not self._write_requested:
                    return
                self._write_requested = False
            try:
                self.write()
            except Exception:
                log.exception("audit writer")

    def _write_queue(self) -> None:
        """Write the queue (under the writer lock), settle every future, then tell the listeners."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        groups: dict[str, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.partition, []).append(item)
        written: list[tuple[str, list[dict[str, Any]]]] = []
        for partition, items in groups.items():
            started = time.perf_counter()
            placed: list[range] = []  # the seqs of the last attempt, once the head was read
            try:
                rows = self._locked(partial(self._write_rows, partition=partition,
                                            builds=[item.build for item in items], placed=placed))
            except BaseException as exc:  # every record of the failed transaction is unwritten
                self._observer.failed(len(items))
                for item in items:
                    item.future.set_exception(exc)
                if placed:
                    for failure_listener in self._failure_listeners:
                        try:
                            failure_listener(partition, placed[-1])
                        except Exception:
                            log.exception("audit failure listener of partition %s", partition)
                if not isinstance(exc, Exception):
                    raise
            else:
                self._observer.committed(len(items), time.perf_counter() - started)
                self._heads_known.add(partition)
                settled = [(item.future, row) for item, row in zip(items, rows, strict=True)]
                if self._wal_sync is not None:  # answered, and listened to, once the WAL is on disk
                    self._wal_sync.submit(Group(partition, settled))
                    continue
                for future, row in settled:
                    future.set_result(row)
                written.append((partition, rows))
        for partition, rows in written:
            self._tell_listeners(partition, rows)

    def _tell_listeners(self, partition: str, rows: list[dict[str, Any]]) -> None:
        for listener in self._listeners:
            try:
                listener(partition, rows)
            except Exception:
                log.exception("audit listener of partition %s", partition)

    def _durable(self, group: Group) -> None:
        """A committed group is on disk (:class:`WalSync`): what follows a committed group."""
        self._tell_listeners(group.partition, [row for _future, row in group.records])

    def _locked(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` in one transaction, under the file lock on SQLite (called under
        the writer lock)."""
        fd = self._file_lock() if self._sqlite else None
        if fd is None:
            return self._transaction(work)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            return self._transaction(work)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _file_lock(self) -> int | None:
        """The lock file's descriptor (opened once; called under the writer lock)."""
        if self._lock_path is not None and self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._lock_fd

    def close(self) -> None:
        """Stop the writer thread, write what is still queued, close the lock file."""
        with self._queue_lock:
            self._closed = True
            self._wake.notify()
            writer = self._writer
        if writer is not None:
            writer.join()
        with self._writer_lock:
            self._write_queue()
        if self._wal_sync is not None:  # (its listeners may take the writer lock: not held here)
            self._wal_sync.close()
        with self._writer_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _transaction(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` then commit, on the kept connection. SQLite: ``BEGIN IMMEDIATE``
        first. PostgreSQL: in pipeline mode, so a group costs two round trips (the locked head, then
        inserts, head update and commit together) — each one a wait of the writer thread for the
        GIL. When the connection turns out to be dead before the commit, nothing was written: the
        work is done once more on a new one. A failed commit is reported as such (outcome unknown)."""
        for attempt in (1, 2):
            conn = self._connection()
            committing = False
            try:
                if self._sqlite:
                    if conn.driver_connection.in_transaction:
                        conn.rollback()
                    conn.driver_connection.execute("BEGIN IMMEDIATE")
                    result = work(conn)
                    committing = True
                    conn.commit()
                else:
                    with conn.driver_connection.pipeline():
                        result = work(conn)
                        committing = True
                        conn.commit()
            except Exception as exc:
                if self._discard(conn, exc) and attempt == 1 and not committing:
                    continue
                raise
            except BaseException as exc:
                self._discard(conn, exc)
                raise
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_rows(self, conn: Any, partition: str, builds: list[Build],
                    placed: list[range] | None = None) -> list[dict[str, Any]]:
        """Read the head (locked), insert the records, move the head; the caller commits. The seqs
        given to the records are appended to ``placed``."""
        cursor = conn.cursor()
        try:
            if partition not in self._heads_known:
                cursor.execute(self._sql["new_head"], (partition, GENESIS_HASH))
            cursor.execute(self._sql["lock_head"], (partition,))
            row = cursor.fetchone()
            if row is None:
                raise RuntimeError(f"audit chain head of partition '{partition}' is missing")
            seq, prev = row
            if placed is not None:
                placed.append(range(seq + 1, seq + 1 + len(builds)))
            rows: list[dict[str, Any]] = []
            for build in builds:
                seq += 1
                values, digest = build(seq, prev)
                rows.append({**_OPTIONAL_NULL, **values, "partition": partition, "seq": seq, "prev_hash": prev, "hash": digest})
                prev = digest
            if self._sqlite:
                cursor.executemany(self._sql["insert"], [_record_values(r) for r in rows])
            else:  # one statement for the group: 13 arrays, not one INSERT per record
                cursor.execute(self._sql["insert_arrays"], tuple([r[c] for r in rows] for c in RECORD_COLUMNS))
            cursor.execute(self._sql["move_head"], (seq, prev, partition))
            return rows
        finally:
            cursor.close()

    def _connection(self) -> Any:
        """The writer's DBAPI connection, kept between groups (called under the writer lock). On
        an SQLite file its commits do not fsync: :class:`WalSync` does, off this thread."""
        if self._conn is None:
            self._conn = self._db.engine.raw_connection()
            if self._wal_sync is not None:
                self._conn.driver_connection.execute("PRAGMA synchronous=NORMAL")
        return self._conn

    def _sync_failed(self, group: Group) -> None:
        """A committed group's fsync failed: its records may be in the chain or not after a crash."""
        seqs = range(group.records[0][1]["seq"], group.records[-1][1]["seq"] + 1)
        for failure_listener in self._failure_listeners:
            try:
                failure_listener(group.partition, seqs)
            except Exception:
                log.exception("audit failure listener of partition %s", group.partition)

    def _discard(self, conn: Any, error: BaseException) -> bool:
        """After a failed transaction: roll back. A connection that is dead (or cannot roll back)
        is dropped, and True returned."""
        try:
            conn.rollback()
            if not (isinstance(error, Exception) and self._db.engine.dialect.is_disconnect(error, conn, None)):
                return False
        except Exception:  # noqa: BLE001, S110 - the connection is broken: dropped below
            pass
        self._conn = None
        try:
            conn.invalidate()
        except Exception:  # noqa: BLE001, S110 - already unusable
            pass
        return True

    def add_checkpoint(self, values: dict[str, Any]) -> bool:
        """Store a checkpoint; False when the partition already has one at that seq. (Written like
        records, so a checkpoint signed after a group costs no pool checkout and, on SQLite, waits
        for another process on the lock file rather than in SQLite's sleeping busy handler.)"""

        def insert(conn: Any) -> bool:
            cursor = conn.cursor()
            try:
                cursor.execute(self._sql["checkpoint"], tuple(values[c] for c in CHECKPOINT_COLUMNS))
                return cursor.fetchone() is not None  # (a row count is not known yet in pipeline mode)
            finally:
                cursor.close()

        with self._writer_lock:
            stored = self._locked(insert)
        if self._wal_sync is not None:  # durable before it is anchored outside the database
            self._wal_sync.flush()
        return stored

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

    def find(self, partition: str, *, after: int = 0, limit: int = 100, time_from: str | None = None,
             time_to: str | None = None, key_label: str | None = None, operation: str | None = None,
             principal: str | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` records of a partition after ``seq`` ``after``, in ``seq`` order, that match
        every filter given: ``time_from <= time < time_to`` (the stored ISO-8601 text, which sorts as
        time) and the exact key label, operation and principal."""
        columns = [getattr(AuditRecordRow, c) for c in RECORD_COLUMNS]
        conditions = [AuditRecordRow.partition == partition, AuditRecordRow.seq > after]
        if time_from is not None:
            conditions.append(AuditRecordRow.time >= time_from)
        if time_to is not None:
            conditions.append(AuditRecordRow.time < time_to)
        for column, value in ((AuditRecordRow.key_label, key_label), (AuditRecordRow.operation, operation),
                              (AuditRecordRow.principal, principal)):
            if value is not None:
                conditions.append(column == value)
        with self._db.session() as session:
            rows = session.execute(select(*columns).where(*conditions).order_by(AuditRecordRow.seq)
                                   .limit(limit)).all()
        return [dict(zip(RECORD_COLUMNS, row, strict=True)) for row in rows]

    def last(self, partition: str, count: int) -> list[dict[str, Any]]:
        """The last ``count`` records of a partition, in ``seq`` order."""
        columns = [getattr(AuditRecordRow, c) for c in RECORD_COLUMNS]
        with self._db.session() as session:
            rows = session.execute(select(*columns).where(AuditRecordRow.partition == partition)
                                   .order_by(AuditRecordRow.seq.desc()).limit(count)).all()
        return [dict(zip(RECORD_COLUMNS, row, strict=True)) for row in reversed(rows)]

    def record_hash(self, partition: str, seq: int) -> str | None:
        """The hash of record ``seq`` of a partition's chain, or None when there is no such record."""
        with self._db.session() as session:
            return session.scalar(select(AuditRecordRow.hash).where(AuditRecordRow.partition == partition,
                                                                    AuditRecordRow.seq == seq))

    def has_checkpoint(self, partition: str, seq: int) -> bool:
        with self._db.session() as session:
            return session.scalar(select(AuditCheckpointRow.seq).where(AuditCheckpointRow.partition == partition,
                                                                       AuditCheckpointRow.seq == seq)) is not None

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


class PendingCommits:
    """Records one operation submitted, each with the repository that commits it: written now in
    this thread (:meth:`write`), or by the repositories' writer threads (:meth:`write_soon`), and
    waited for (:meth:`wait`, or the :attr:`futures`)."""

    def __init__(self) -> None:
        self._items: list[tuple[AuditRepository, Future[dict[str, Any]]]] = []

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, repository: AuditRepository, future: Future[dict[str, Any]]) -> None:
        self._items.append((repository, future))

    @property
    def futures(self) -> list[Future[dict[str, Any]]]:
        return [future for _, future in self._items]

    @property
    def local(self) -> bool:
        """True when every record goes to a local database (SQLite)."""
        return all(repository.local for repository, _ in self._items)

    def _repositories(self) -> list[AuditRepository]:
        return list({id(repository): repository for repository, _ in self._items}.values())

    def write(self) -> None:
        for repository in self._repositories():
            repository.write()

    def write_soon(self) -> None:
        for repository in self._repositories():
            repository.write_soon()

    def wait(self) -> None:
        """Block until every record is settled (written or failed)."""
        for repository, future in self._items:
            repository.wait(future)
