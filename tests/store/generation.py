"""Helpers for tests of the key generation: wait until a reader is in sync, or has caught up."""

from __future__ import annotations

import time

from sqlalchemy import text

from hsmgate.store.database import Database

#: The longest a change may take to reach another process on PostgreSQL in these tests.
NOTIFICATION_BOUND = 2.0


def in_sync(db: Database, timeout: float = 10.0) -> object:
    """``db``'s key generation token once it has one (a PostgreSQL listener needs a moment)."""
    deadline = time.monotonic() + timeout
    while (token := db.key_generation.current()) is None:
        assert time.monotonic() < deadline, "the key generation reader did not get in sync"
        time.sleep(0.005)
    return token


def committed_generation(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(text("SELECT value FROM key_generation")))


def caught_up(reader: Database, writer: Database) -> None:
    """On PostgreSQL, wait (at most :data:`NOTIFICATION_BOUND` s) until ``reader`` has seen every
    change ``writer`` committed. On SQLite return at once: there, another process sees a change
    exactly from its commit on, and the tests assert that without waiting."""
    if reader.dialect == "sqlite":
        return
    value = committed_generation(writer)
    deadline = time.monotonic() + NOTIFICATION_BOUND
    while True:
        seen = reader.key_generation.seen()
        if reader.key_generation.current() is not None and seen is not None and seen >= value:
            return
        assert time.monotonic() < deadline, f"generation {value} not seen within {NOTIFICATION_BOUND}s ({seen})"
        time.sleep(0.001)
