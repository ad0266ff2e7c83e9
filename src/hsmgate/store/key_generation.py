"""The key generation: one number per state database that changes with every change of key state.

Every transaction that writes ``soft_keys`` or ``key_metadata`` calls :func:`bump` first, which adds
one to the single row of ``key_generation`` in that same transaction (on PostgreSQL it also queues
``NOTIFY hsmgate_key_generation, '<new value>'``, delivered when — and only if — it commits). A
process may then keep key state in memory (unsealed soft-token keys, password hashes, SKA guard
bits) and trust it without a query for as long as :meth:`KeyGeneration.current` returns the token it
was read under. Rules for callers: read the token *before* the query that fills a cache entry;
``None`` means "unknown": do not trust any cache, query.

How ``current()`` learns of changes without a query in the common case:

* **SQLite** — ``PRAGMA data_version`` on the dedicated quick connection: it changes whenever
  another connection, of this or any other process, committed anything. Only then the generation
  row is read again. Exact: a change committed anywhere is seen by the next call. (In WAL mode the
  pragma takes the shared-memory read lock, so it costs about what an indexed lookup costs — the
  saving on SQLite is small, the point is PostgreSQL.)
* **PostgreSQL** — a daemon thread with its own connection runs ``LISTEN hsmgate_key_generation``,
  reads the row once LISTEN is active, then follows the notifications, and re-reads the row every
  :data:`HEARTBEAT` second (which also catches anything missed). ``current()`` reads two attributes
  and the clock. While that connection is down, or when no heartbeat succeeded for
  :data:`STALE_AFTER` seconds, it returns None until the listener has reconnected (retrying with
  backoff) and read the row again.

  **Cross-instance window**: a change committed by *another* process is seen here only once its
  notification has arrived: usually before the writer's commit has returned, within a few
  milliseconds under load (figures: ``bench/results/design-measurements.md``) — the listener
  thread must win the GIL, so a busy process adds up to a few switch intervals; a network adds its
  latency. Until then this process may still use a key
  deleted, replaced, blocked or given a password elsewhere. If the listener's connection dies
  without the kernel noticing, the window is bounded by :data:`STALE_AFTER`.

Changes made by this process are seen at once in any case: :class:`~hsmgate.store.database.Database`
tells its reader after committing a transaction that bumped, and the reader's local counter is part
of the token.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from hsmgate.store.database import Database

log = logging.getLogger("hsmgate.store.key_generation")

#: The PostgreSQL notification channel; the payload is the new generation as decimal text.
CHANNEL = "hsmgate_key_generation"
#: ``Session.info`` key set by :func:`bump`, read by ``Database.session`` after the commit.
BUMPED = "hsmgate.key_generation.bumped"
#: PostgreSQL: seconds between heartbeats of the listener (a re-read of the generation row).
HEARTBEAT = 1.0
#: PostgreSQL: without a successful heartbeat for this long, ``current()`` returns None.
STALE_AFTER = 3.0
#: PostgreSQL: reconnection delays of the listener, doubled from the first up to the last.
RETRY_FIRST, RETRY_MAX = 0.05, 2.0

_BUMP_SQL = text("UPDATE key_generation SET value = value + 1 WHERE id = 1 RETURNING value")
_READ_SQL = "SELECT value FROM key_generation WHERE id = 1"


def bump(session: Session) -> int:
    """Advance the key generation inside ``session``'s transaction; returns the new value.

    Call it *before* the transaction's other writes: on PostgreSQL the row lock it takes then
    always comes first, so two key-writing transactions cannot deadlock on it."""
    value = session.execute(_BUMP_SQL).scalar()
    if value is None:  # the row was deleted by hand: start again (still a change for every reader)
        session.execute(text("INSERT INTO key_generation (id, value) VALUES (1, 1)"))
        value = 1
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(value)})
    session.info[BUMPED] = True
    return int(value)


class KeyGeneration:
    """Reader of the key generation of one database. This base class knows nothing, so
    :meth:`current` is always None (fail closed): used for databases other than SQLite and PostgreSQL."""

    def __init__(self) -> None:
        self._local = 0  # commits of this process that bumped; part of every token
        self._local_lock = threading.Lock()
        # (token, local commits) read on entering pinned(), in the context that entered it
        self._pin: ContextVar[tuple[object | None, int] | None] = ContextVar(f"hsmgate_key_pin_{id(self)}",
                                                                           default=None)

    def current(self) -> object | None:
        """A token that differs whenever the generation may have changed since it was returned,
        or None when that is unknown. Compare tokens with ``==`` only. Inside :meth:`pinned`, the
        token read on entry (unless this process has since changed key state itself)."""
        pin = self._pin.get()
        if pin is not None and pin[1] == self._local:
            return pin[0]
        return self._read()

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Read the generation once for a whole read-only operation (a signature, a batch of
        1000): within the block — in this context, and in threads that run a copy of it — every
        :meth:`current` answers the token read on entry. The operation then sees key state as of
        its start, as if it had run just before any change committed meanwhile elsewhere; a change
        made by this process inside the block is still seen at once."""
        token = self._pin.set((self._read(), self._local))
        try:
            yield
        finally:
            self._pin.reset(token)

    def _read(self) -> object | None:
        return None

    def seen(self) -> int | None:
        """The generation value this reader knows of (None: unknown). For tests and diagnostics."""
        return None

    def note_local_commit(self) -> None:
        """Called after a transaction of this process that bumped the generation has committed."""
        with self._local_lock:
            self._local += 1
        self._local_changed()

    def _local_changed(self) -> None:
        pass

    def close(self) -> None:
        """Stop what the reader runs (the PostgreSQL listener); ``current()`` is None from then on."""


class SqliteKeyGeneration(KeyGeneration):
    """SQLite: ``PRAGMA data_version`` on the quick connection, the row only when it moved."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self._db = db
        self._version: tuple[int, int] | None = None  # (quick connection number, data_version)
        self._value: int | None = None
        self._closed = False

    def _read(self) -> object | None:
        if self._closed:
            return None
        try:
            value = self._db.quick_call(self._refresh)
        except Exception:  # noqa: BLE001 - unknown is the answer (fail closed); the next call retries
            self._version = None
            return None
        return None if value is None else (value, self._local)

    def seen(self) -> int | None:
        return self._value

    def _refresh(self, driver: Any, connection_number: int) -> int | None:
        """Under the quick connection's lock: the generation, re-read only when the data moved."""
        cursor = driver.execute("PRAGMA data_version")
        try:
            version = (connection_number, cursor.fetchone()[0])
        finally:
            cursor.close()
        if version != self._version:
            cursor = driver.execute(_READ_SQL)
            try:
                row = cursor.fetchone()
            finally:
                cursor.close()
            self._value = None if row is None else int(row[0])
            self._version = version  # the read above follows the PRAGMA: never older than it
        return self._value

    def close(self) -> None:
        self._closed = True


class PostgresKeyGeneration(KeyGeneration):
    """PostgreSQL: a LISTEN thread keeps the generation; ``current()`` reads two attributes."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self._connect_args = _psycopg_connect_args(db)
        self._value: int | None = None  # None while the listener is not (yet) in sync
        self._token: tuple[int, int] | None = None
        self._fresh_until = 0.0  # monotonic time until which the last heartbeat vouches for _value
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self.backend_pid: int | None = None  # the listener's server process (tests terminate it)
        self._in_sync = False  # the current connection has read the generation after LISTEN
        self._thread = threading.Thread(target=self._run, name="hsmgate-key-generation", daemon=True)
        _READERS.add(self)
        self._thread.start()

    def _read(self) -> object | None:
        token = self._token
        if token is None or time.monotonic() > self._fresh_until:
            return None
        return token

    def seen(self) -> int | None:
        return self._value

    def _local_changed(self) -> None:
        with self._lock:
            if self._value is not None:
                self._token = (self._value, self._local)

    def _set(self, value: int | None, *, heartbeat: bool = False) -> None:
        with self._lock:
            if value is None or self._stop.is_set():
                self._value = self._token = None
                self._fresh_until = 0.0
                return
            if self._value is None or value > self._value:
                self._value = value
            self._token = (self._value, self._local)
            if heartbeat:
                self._fresh_until = time.monotonic() + STALE_AFTER

    def close(self) -> None:
        self._stop.set()
        self._set(None)
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # already closed
            pass
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _forked(self) -> None:
        """In a forked child the listener thread does not exist: never trust this reader again."""
        self._stop.set()
        self._value = self._token = None

    # -- the listener thread -------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0  # in a row, since the listener was last in sync
        while not self._stop.is_set():
            self._in_sync = False
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - any failure: unknown until reconnected
                self._set(None)
                if self._stop.is_set():
                    break
                failures = 1 if self._in_sync else failures + 1
                # once per outage at warning level, then quietly until the listener is back
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "key generation listener: %s; key caches are bypassed until it reconnects",
                        str(exc).strip() or type(exc).__name__)
                self._stop.wait(min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX))
        self._set(None)

    def _listen(self) -> None:
        import psycopg

        connection = psycopg.connect(**self._connect_args)
        try:
            self.backend_pid = connection.info.backend_pid
            # notifications that arrive while a statement runs (the heartbeat) come through here
            connection.add_notify_handler(lambda notify: self._notified(notify.payload))
            connection.execute(f"LISTEN {CHANNEL}")
            self._heartbeat(connection)  # LISTEN is active: nothing committed from now on is missed
            self._in_sync = True
            next_heartbeat = time.monotonic() + HEARTBEAT
            pgconn = connection.pgconn
            while not self._stop.is_set():
                wait = max(0.0, next_heartbeat - time.monotonic())
                readable, _, _ = select.select([pgconn.socket, self._wake_r], [], [], wait)
                if self._wake_r in readable:
                    return
                if pgconn.socket in readable:
                    pgconn.consume_input()  # raises when the connection was lost
                    if pgconn.status != psycopg.pq.ConnStatus.OK:
                        raise psycopg.OperationalError("connection closed by the server")
                    while (notify := pgconn.notifies()) is not None:
                        self._notified(notify.extra)
                if time.monotonic() >= next_heartbeat:
                    self._heartbeat(connection)
                    next_heartbeat = time.monotonic() + HEARTBEAT
        finally:
            self._set(None)
            connection.close()

    def _heartbeat(self, connection: Any) -> None:
        row = connection.execute(_READ_SQL).fetchone()
        if row is None:
            raise LookupError("the key_generation table has no row")
        self._set(int(row[0]), heartbeat=True)

    def _notified(self, payload: bytes | str) -> None:
        try:
            value = int(payload)
        except ValueError:
            return
        self._set(value)


def open_key_generation(db: Database) -> KeyGeneration:
    """The reader that fits ``db``'s dialect (and driver)."""
    if db.dialect == "sqlite":
        return SqliteKeyGeneration(db)
    if db.dialect == "postgresql" and db.engine.dialect.driver == "psycopg":
        return PostgresKeyGeneration(db)
    return KeyGeneration()


def _psycopg_connect_args(db: Database) -> dict[str, Any]:
    """Arguments of ``psycopg.connect`` for the listener: the engine's, autocommit, a short
    statement timeout, TCP keepalives and a TCP user timeout (a dead peer is noticed in 10–20 s;
    :data:`STALE_AFTER` already stops trusting the listener long before)."""
    args, kwargs = db.engine.dialect.create_connect_args(db.engine.url)
    if args:
        kwargs = {"conninfo": args[0], **kwargs}
    return {**kwargs, "autocommit": True, "connect_timeout": 5, "options": "-c statement_timeout=5000",
            "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 2,
            "tcp_user_timeout": 10_000,
            "application_name": "hsmgate-key-generation"}


_READERS: weakref.WeakSet[PostgresKeyGeneration] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reader in list(_READERS):
        reader._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
