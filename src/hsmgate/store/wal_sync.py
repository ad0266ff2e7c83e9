"""Durability of the audit log's SQLite group commits, away from the thread that commits them.

On SQLite the audit groups are written by the event loop itself (``api/execution.py``: a commit on
the loop is short, a writer thread would wait for the GIL after each statement). With SQLite's
default ``synchronous=FULL`` that commit also *fsyncs* the write-ahead log, and for that long —
a fraction of a millisecond on a quiet SSD, milliseconds on a busy disk — the loop serves nobody.

So the audit writer's own connection runs with ``synchronous=NORMAL`` (in WAL mode: the commit
writes its frames into the WAL but does not fsync it) and hands the committed group to
:class:`WalSync`, whose thread fsyncs the WAL file and only then settles the group's futures. A
caller still gets its answer only once its record is on disk, as with ``FULL``; the loop meanwhile
serves the next requests, whose records form the next group. One fsync covers every group
committed before it began. If the fsync fails, the group's futures fail (fail-closed: 503 / 703).

Why this is as durable as ``FULL``: in WAL mode a transaction is durable once its frames,
commit frame included, are on disk in the WAL, which is what the fsync of the WAL file after the
commit ensures; a checkpoint that moved the frames into the database file meanwhile synced both
files itself (``NORMAL`` syncs the WAL before a checkpoint and the database after). Databases in
other journal modes, or in memory, keep ``FULL`` and settle at commit.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("hsmgate.audit")

@dataclass(frozen=True, slots=True)
class Group:
    """A committed group of one partition's chain: each record's future with its stored row."""

    partition: str
    records: Sequence[tuple[Future[dict[str, Any]], dict[str, Any]]]


class WalSync:
    """Fsyncs an SQLite database's WAL file after committed groups, then settles their futures
    (module text) and tells ``on_durable(group)``; ``on_failure(group)`` is told of each group whose
    fsync failed (its records may or may not survive a crash). Both are called in the thread that
    fsynced, the sync thread or a caller of :meth:`flush`."""

    def __init__(self, wal_path: str, on_durable: Callable[[Group], None],
                 on_failure: Callable[[Group], None]) -> None:
        self._path = wal_path
        self._on_durable = on_durable
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._doorbell = threading.Condition(self._lock)
        self._groups: list[Group] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self._fd: int | None = None
        self._inode: int | None = None
        self._fd_lock = threading.Lock()

    def submit(self, group: Group) -> None:
        """Settle ``group`` once the WAL is on disk (by the sync thread, started on first use)."""
        with self._lock:
            if not self._closed:
                self._groups.append(group)
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="hsmgate-audit-fsync", daemon=True)
                    self._thread.start()
                self._doorbell.notify()
                return
        self._settle([group])  # closing: in this thread

    def flush(self) -> None:
        """Fsync now, in this thread, and settle every group submitted so far (for a caller that
        blocks anyway, and for a write that must be durable before its caller goes on)."""
        with self._lock:
            groups, self._groups = self._groups, []
        self._settle(groups)

    def close(self) -> None:
        """Settle what is left, stop the thread, close the WAL's descriptor."""
        with self._lock:
            self._closed = True
            self._doorbell.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        try:
            self.flush()
        except OSError:  # logged by _settle; nothing is waiting any more
            pass
        with self._fd_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._groups and not self._closed:
                    self._doorbell.wait()
                if not self._groups:
                    return
                groups, self._groups = self._groups, []
            self._settle(groups)

    def _settle(self, groups: list[Group]) -> None:
        try:
            self._fsync()
        except BaseException as exc:  # noqa: BLE001 - every waiter of these groups is told
            log.error("audit records not made durable (fsync of %s): %s", self._path, exc)
            for group in groups:
                for future, _row in group.records:
                    future.set_exception(exc)
                self._on_failure(group)
            if not isinstance(exc, Exception) or not groups:
                raise
            return
        for group in groups:
            for future, row in group.records:
                future.set_result(row)
            self._on_durable(group)

    def _fsync(self) -> None:
        """fsync the WAL file, reopened when SQLite has replaced it since (a new inode)."""
        with self._fd_lock:
            try:
                inode = os.stat(self._path).st_ino
            except FileNotFoundError:  # no WAL: every committed frame was checkpointed and synced
                return
            if self._fd is None or inode != self._inode:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                self._fd = os.open(self._path, os.O_RDONLY)
                self._inode = inode
            os.fsync(self._fd)
