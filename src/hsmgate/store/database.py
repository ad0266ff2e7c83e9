"""Engine and session factory for the state database, and schema migration on start-up."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from hsmgate.store.key_generation import BUMPED, KeyGeneration, open_key_generation

T = TypeVar("T")

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: Seconds a PostgreSQL connection attempt may take (an unreachable host otherwise waits for the
#: kernel's TCP timeout, minutes); a ``connect_timeout`` in the URL wins.
CONNECT_TIMEOUT = 10
#: Key of the PostgreSQL advisory lock that serialises schema migrations of concurrent starts
#: (several workers or instances sharing one database).
_MIGRATION_LOCK_KEY = 0x4853_4D47  # "HSMG"
#: Key of the PostgreSQL advisory lock held while a starting process sets up a partition's shared
#: state (see :meth:`Database.start_up_lock`).
_START_UP_LOCK_KEY = 0x4853_4D48  # "HSMH"


#: SQLite result codes (the primary code, low byte of the extended one) of a database that cannot be
#: read or written for now: busy or locked past the timeout, disk full, an I/O error, a file that
#: cannot be opened or is read-only, a locking protocol error.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 8, 10, 13, 14, 15})  # BUSY LOCKED READONLY IOERR FULL CANTOPEN PROTOCOL


def unavailable(error: BaseException) -> bool:
    """True when ``error`` says the state database cannot be reached or written *for now* — a lost or
    refused connection, the server shutting down or out of resources, a statement cancelled, SQLite's
    disk full, I/O error or lock timeout — rather than a bug (a syntax error, a missing table, a
    constraint). SQLAlchemy's wrappers are looked through."""
    seen = 0
    while isinstance(error, DBAPIError) and seen < 5:
        if error.connection_invalidated:
            return True
        if error.orig is None:
            return False
        error, seen = error.orig, seen + 1
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in _SQLITE_UNAVAILABLE
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    # OperationalError: connection failures and SQLSTATE classes 08 (connection), 53 (insufficient
    # resources: disk full, out of memory, too many connections), 57 (operator intervention:
    # terminated, shutting down, cancelled) and 58 (system error: I/O)
    return isinstance(error, psycopg.OperationalError)


class DatabaseUnavailable(Exception):
    """The state database cannot be opened or reached; the message (one line, no password) names the
    problem and what to do about it."""


class Database:
    """One engine plus a session factory. ``session()`` is a unit of work: it commits on success
    and rolls back on any exception."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        elif url.startswith("postgresql"):
            # timestamps come back in UTC whatever the server's TimeZone setting
            kwargs["connect_args"] = {"options": "-c TimeZone=UTC", **_timeout(url)}
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise DatabaseUnavailable(f"cannot use the database URL: {_first_line(exc)}") from None
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
            _private_sqlite_files(self.engine.url.database)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._quick_engine: Engine | None = None
        self._quick_conn: object | None = None
        self._quick_number = 0  # how many quick connections were opened: tells a reconnection
        self._quick_lock = threading.Lock()
        self._generation: KeyGeneration | None = None
        self._generation_lock = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._factory() as session:
            with session.begin():
                yield session
            if session.info.pop(BUMPED, False) and self._generation is not None:
                self._generation.note_local_commit()  # this process's caches: invalid at once

    @property
    def key_generation(self) -> KeyGeneration:
        """The reader of this database's key generation (``store/key_generation.py``), made on
        first use (on PostgreSQL that starts its listener thread); stopped by :meth:`dispose`."""
        generation = self._generation
        if generation is None:
            with self._generation_lock:
                if self._generation is None:
                    self._generation = open_key_generation(self)
                generation = self._generation
        return generation

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision (idempotent, and safe when several
        processes start at once on the same database: they migrate one after the other)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        try:
            with self._migration_lock(), self.engine.begin() as connection:
                if self.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except DBAPIError as exc:
            if not _is_connect_failure(exc):
                raise
            raise DatabaseUnavailable(connection_problem(self.url, exc)) from None

    @contextmanager
    def start_up_lock(self) -> Iterator[None]:
        """Held while a starting process binds a partition and creates its internal keys (attestation,
        SKA timestamp, approver backup): processes starting at once on one database (and one PKCS#11
        token, which does not refuse a second object with the same label) do it one after the other. PostgreSQL: a session-level advisory
        lock on a connection of its own; a SQLite file: the migration lock file."""
        if self.dialect != "postgresql":
            with self._migration_lock():
                yield
            return
        with self.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _START_UP_LOCK_KEY})
            connection.commit()  # the lock outlives the transaction; the connection does not idle in one
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _START_UP_LOCK_KEY})
                connection.commit()

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """For a SQLite file: an exclusive lock on ``<db>.migrate.lock`` beside it."""
        path = self.engine.url.database if self.dialect == "sqlite" else None
        if not path or path == ":memory:" or path.startswith("file:"):
            yield
            return
        try:
            fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        except OSError as exc:  # the directory is missing or not writable
            raise DatabaseUnavailable(connection_problem(self.url, exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def quick_scalar(self, sql: str, params: tuple[object, ...]) -> object | None:
        """First column of the first row of a read-only ``sql`` (``?`` placeholders), or None
        (see :meth:`quick_row`)."""
        row = self.quick_row(sql, params)
        return row[0] if row else None

    def quick_row(self, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        """The first row of a read-only ``sql`` (``?`` placeholders), or None.

        For per-request checks on the hot path: one statement on a dedicated autocommit DBAPI
        connection kept by this process (serialised by a lock), without the ORM or the pool: one
        round trip, where a session or a pooled Core connection costs several (pre-ping and
        reset-on-return; figures: ``bench/results/design-measurements.md``). Reconnects once if
        the connection was lost."""
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        with self._quick_lock:
            for attempt in (1, 2):
                # the driver's own connection.execute (sqlite3, psycopg 3): no pool-proxy cursor,
                # and the driver's statement cache / automatic prepare
                driver = self._quick_connection().driver_connection  # type: ignore[attr-defined]
                try:
                    cursor = driver.execute(sql, params)
                    try:
                        row = cursor.fetchone()
                    finally:
                        cursor.close()
                    return None if row is None else tuple(row)
                except Exception:
                    self._close_quick()
                    if attempt == 2:
                        raise
        return None  # pragma: no cover

    def quick_call(self, work: Callable[[Any, int], T]) -> T:
        """``work(driver connection, connection number)`` on the quick connection, under its lock.
        The number changes whenever the connection was replaced (per-connection state such as
        SQLite's ``PRAGMA data_version`` then means nothing). An exception closes the connection
        and propagates; there is no retry."""
        with self._quick_lock:
            driver = self._quick_connection().driver_connection  # type: ignore[attr-defined]
            try:
                return work(driver, self._quick_number)
            except Exception:
                self._close_quick()
                raise

    def _quick_connection(self) -> object:
        if self._quick_conn is None:
            if self._quick_engine is None:
                kwargs: dict = {"poolclass": NullPool}
                if self.dialect == "sqlite":
                    kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
                elif self.dialect == "postgresql":
                    kwargs["connect_args"] = {"options": "-c TimeZone=UTC", "autocommit": True}
                self._quick_engine = create_engine(self.url, **kwargs)
                if self.dialect == "sqlite":
                    event.listen(self._quick_engine, "connect", _sqlite_pragmas)
            self._quick_conn = self._quick_engine.raw_connection()  # closed with the pool proxy
            self._quick_number += 1
        return self._quick_conn

    def _close_quick(self, *, failed: bool = True) -> None:
        """Drop the quick connection. After a failure it is invalidated, not closed: closing first
        rolls back, which on a lost connection fails and logs a traceback."""
        if self._quick_conn is not None:
            with contextlib.suppress(Exception):  # already broken
                # (a connection closed already has no DBAPI connection left to invalidate)
                if failed and self._quick_conn.dbapi_connection is not None:  # type: ignore[attr-defined]
                    self._quick_conn.invalidate()  # type: ignore[attr-defined]
                else:
                    self._quick_conn.close()  # type: ignore[attr-defined]
            self._quick_conn = None

    def dispose(self) -> None:
        """Close every connection and stop the key generation listener."""
        with self._generation_lock:
            if self._generation is not None:
                self._generation.close()
        with self._quick_lock:
            self._close_quick(failed=False)
            if self._quick_engine is not None:
                self._quick_engine.dispose()
        self.engine.dispose()


def _timeout(url: str) -> dict[str, int]:
    return {} if "connect_timeout" in make_url(url).query else {"connect_timeout": CONNECT_TIMEOUT}


def _first_line(error: BaseException) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__


def _is_connect_failure(error: DBAPIError) -> bool:
    """True for errors of opening a connection (SQLAlchemy names no statement then; SQLite reports a
    file it cannot open at the first statement)."""
    return error.statement is None or "unable to open database file" in str(error.orig)


def connection_problem(url: str, error: BaseException) -> str:
    """One line on why the database at ``url`` cannot be opened, and what to do; the password is
    never shown."""
    parsed = make_url(url)
    detail = str(getattr(error, "orig", None) or error)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        reason = getattr(error, "strerror", None) or _first_line(error)
        return (f"cannot open the SQLite database {path}: {reason}: check that {path.parent} exists and that "
                "this user may write to it, or set HSMGATE_DATABASE_URL to another database")
    host, port, user = parsed.host or "localhost", parsed.port or 5432, parsed.username
    where = f"the PostgreSQL server at {host}:{port}"
    shown = parsed.render_as_string(hide_password=True)
    if missing := re.search(r'database "([^"]+)" does not exist', detail):
        name = missing[1]
        owner = f' OWNER "{user}"' if user else ""
        as_user = f" -U {user}" if user else ""
        return (f"database '{name}' does not exist on {where}: create it with 'createdb -h {host} -p {port}{as_user} "
                f"{name}' (or in psql: CREATE DATABASE \"{name}\"{owner};), then start hsmgate again")
    if "Connection refused" in detail:
        return (f"cannot connect to {where}: connection refused: start PostgreSQL or correct the host and port "
                f"of HSMGATE_DATABASE_URL ({shown})")
    if "resolve host" in detail or "translate host name" in detail:
        return f"cannot resolve the host '{host}' of HSMGATE_DATABASE_URL ({shown}): correct it"
    if "timeout expired" in detail or "timed out" in detail:
        return (f"{where} did not answer within {CONNECT_TIMEOUT} s: check that it is reachable from here "
                f"(firewall, host and port of HSMGATE_DATABASE_URL: {shown})")
    if refused := re.search(r'(password authentication failed for user "[^"]+"|role "[^"]+" does not exist)',
                            detail):
        return (f"{where} refused the login: {refused[1]}: correct the user and password of "
                f"HSMGATE_DATABASE_URL ({shown})")
    if fatal := re.search(r"FATAL:\s+(.+)", detail):
        return f"{where} refused the connection: {fatal[1].strip()}: check HSMGATE_DATABASE_URL ({shown})"
    return f"cannot open the state database {shown}: {_first_line(error)}: check HSMGATE_DATABASE_URL"


#: Mode of the SQLite database file and its companions (the data directory's rule, private_files.py).
PRIVATE_FILE_MODE = 0o600
#: Files beside a SQLite database: SQLite's own (which take the database file's mode when SQLite
#: creates them) and hsmgate's lock files.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", ".migrate.lock", ".audit.lock")


def _private_sqlite_files(path: str | None) -> None:
    """Create the database file of a SQLite URL with mode 0600 (SQLite would make it 0644 less the
    umask), and tighten an existing one and its companions of this user to 0600."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(OSError):  # no directory, no permission …: SQLite reports it on connecting
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE))
    for name in (path, *(path + suffix for suffix in _SQLITE_COMPANIONS)):
        try:
            info = os.stat(name)
            if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
                os.chmod(name, PRIVATE_FILE_MODE)
        except OSError:  # absent, or a read-only file system: nothing to tighten here
            continue


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
