"""The key generation (``store/key_generation.py``) on SQLite and PostgreSQL: every write of key
state advances it in its transaction, another process learns of it (SQLite: at once; PostgreSQL:
by notification), the writing process at once, and an unknown state reads as None."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from hsmgate.store import key_generation
from hsmgate.store.database import Database
from hsmgate.store.key_generation import bump
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.models import SoftKeyRecord
from hsmgate.store.partitions import PartitionRepository
from hsmgate.store.soft_keys import SoftKeyRepository
from tests.postgres import SERVER, fresh_database
from tests.store.generation import NOTIFICATION_BOUND, caught_up, committed_generation, in_sync

WHEN = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture()
def other(database: Database) -> Iterator[Database]:
    """Another process on the same database: its own engine, connections and reader."""
    db = Database(database.url)
    try:
        yield db
    finally:
        db.dispose()


def _record(label: str) -> SoftKeyRecord:
    return SoftKeyRecord(label=label, key_type="AES", key_size=128, attributes={}, sealed_material=b"\x00" * 32,
                         nonce=b"\x01" * 12, created_at=WHEN)


def _changed_token(db: Database, before: object) -> object:
    """``db``'s next token different from ``before``: at once on SQLite, within the notification
    bound on PostgreSQL."""
    deadline = time.monotonic() + (0 if db.dialect == "sqlite" else NOTIFICATION_BOUND)
    while True:
        token = db.key_generation.current()
        if token is not None and token != before:
            return token
        assert time.monotonic() < deadline, f"the token did not change ({token!r})"
        time.sleep(0.001)


def test_the_migration_starts_at_zero_and_a_bump_adds_one(database: Database) -> None:
    assert committed_generation(database) == 0
    with database.session() as session:
        assert bump(session) == 1
    assert committed_generation(database) == 1


def test_a_bump_changes_the_token_of_another_process(database: Database, other: Database,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_generation, "HEARTBEAT", 60.0)  # PostgreSQL: by notification, not heartbeat
    monkeypatch.setattr(key_generation, "STALE_AFTER", 60.0)
    before = in_sync(other)
    assert other.key_generation.current() == before  # stable while nothing changes
    with database.session() as session:
        bump(session)
    after = _changed_token(other, before)
    assert other.key_generation.seen() == 1
    assert other.key_generation.current() == after


def test_a_pinned_operation_reads_the_generation_once_and_still_sees_its_own_writes(
        database: Database, other: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_generation, "HEARTBEAT", 60.0)
    monkeypatch.setattr(key_generation, "STALE_AFTER", 60.0)
    before = in_sync(other)
    with other.key_generation.pinned():
        assert other.key_generation.current() == before
        with database.session() as session:  # another process changes key state meanwhile
            bump(session)
        time.sleep(0.05 if other.dialect == "postgresql" else 0)  # its notification has arrived
        assert other.key_generation.current() == before  # the operation keeps its start state
        KeyMetadataRepository(other, "p").record_creation("mine", WHEN)  # this process writes
        mine = other.key_generation.current()
        assert mine is not None and mine != before  # ... and sees that at once
    _changed_token(other, before)  # outside the block: the current state again
    caught_up(other, database)
    assert other.key_generation.seen() == 2 and other.key_generation.current() != before


def test_a_rolled_back_bump_changes_nothing(database: Database, other: Database) -> None:
    before = in_sync(other)
    with pytest.raises(RuntimeError), database.session() as session:
        bump(session)
        raise RuntimeError("rolled back")
    time.sleep(0.05)  # a notification, if one were sent, would have arrived
    assert committed_generation(database) == 0
    assert other.key_generation.current() == before


WRITES: dict[str, Callable[[Database], object]] = {
    "soft key added": lambda db: SoftKeyRepository(db, "p").add(_record("new")),
    "soft key removed": lambda db: SoftKeyRepository(db, "p").remove("k"),
    "creation recorded": lambda db: KeyMetadataRepository(db, "p").record_creation("new", WHEN),
    "row reserved": lambda db: KeyMetadataRepository(db, "p").reserve("new", WHEN, password_hash="h"),
    "password set": lambda db: KeyMetadataRepository(db, "p").set_password_hash("k", "h2", when=WHEN),
    "origin set": lambda db: KeyMetadataRepository(db, "p").set_origin("k", "imported", public_only=True, when=WHEN),
    "metadata forgotten": lambda db: KeyMetadataRepository(db, "p").forget("k"),
    "SKA row reserved": lambda db: KeyMetadataRepository(db, "p").reserve_ska(
        "new", WHEN, policy="{}", guard=0, address_format=None),
    "SKA columns put": lambda db: KeyMetadataRepository(db, "p").put_ska("k", policy="{}", guard=1,
                                                                         address_format=None),
    "policy set (block)": lambda db: KeyMetadataRepository(db, "p").set_ska("k", policy="{}", guard=1),
    "partition purged": lambda db: PartitionRepository(db).purge_keys("p"),
}


@pytest.mark.parametrize("write", WRITES, ids=list(WRITES))
def test_every_write_of_key_state_advances_the_generation(database: Database, write: str) -> None:
    SoftKeyRepository(database, "p").add(_record("k"))
    KeyMetadataRepository(database, "p").reserve("k", WHEN, password_hash=None)
    before = committed_generation(database)
    WRITES[write](database)
    assert committed_generation(database) == before + 1


def test_writes_of_this_process_change_its_token_at_once(database: Database,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With notifications ignored and no heartbeat, only the local counter can tell."""
    monkeypatch.setattr(key_generation.PostgresKeyGeneration, "_notified", lambda self, payload: None)
    monkeypatch.setattr(key_generation, "HEARTBEAT", 60.0)
    monkeypatch.setattr(key_generation, "STALE_AFTER", 60.0)
    db = Database(database.url)
    try:
        before = in_sync(db)
        KeyMetadataRepository(db, "p").record_creation("k", WHEN)
        after = db.key_generation.current()
        assert after is not None and after != before
    finally:
        db.dispose()


def test_a_hot_read_runs_no_statement_and_a_change_runs_one(tmp_path: Path) -> None:
    """SQLite: a call costs ``PRAGMA data_version`` only; the generation row is read again only
    after a commit (PostgreSQL reads nothing at all: ``current()`` is two attribute reads)."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    writer, reader = Database(url), Database(url)
    writer.migrate()
    try:
        in_sync(reader)
        statements: list[str] = []
        reader.quick_call(lambda driver, _number: driver.set_trace_callback(statements.append))
        for _ in range(50):
            reader.key_generation.current()
        assert set(statements) == {"PRAGMA data_version"}
        statements.clear()
        with writer.session() as session:
            bump(session)
        reader.key_generation.current()
        assert [s for s in statements if "key_generation" in s] == [key_generation._READ_SQL]
    finally:
        writer.dispose()
        reader.dispose()


def test_sqlite_a_replaced_quick_connection_reads_the_generation_again(tmp_path: Path) -> None:
    """A new connection's ``data_version`` may equal the old one's: the connection number tells."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    writer, reader = Database(url), Database(url)
    writer.migrate()
    try:
        in_sync(reader)
        with writer.session() as session:  # the old connection's data_version moves on by one
            bump(session)
        before = reader.key_generation.current()
        reader.quick_call(lambda driver, _number: driver.close())  # lost, e.g. a disk error
        assert SoftKeyRepository(reader, "p").record_nonce("k") is None  # another quick read reconnects
        with writer.session() as session:  # ... and the new one's too: the two values are equal now
            bump(session)
        after = reader.key_generation.current()
        assert after is not None and after != before
        assert reader.key_generation.seen() == committed_generation(writer) == 2
    finally:
        writer.dispose()
        reader.dispose()


@pytest.mark.postgres
def test_postgresql_the_listener_recovers_after_losing_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_generation, "RETRY_FIRST", 0.3)  # a window long enough to observe
    with fresh_database() as url:
        writer, reader = Database(url), Database(url)
        writer.migrate()
        try:
            before = in_sync(reader)
            listener = reader.key_generation
            first_pid = listener.backend_pid  # type: ignore[attr-defined]
            with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
            deadline = time.monotonic() + NOTIFICATION_BOUND
            while listener.current() is not None:
                assert time.monotonic() < deadline, "the lost connection went unnoticed"
                time.sleep(0.001)
            with writer.session() as session:  # committed while nobody listens: no notification seen
                value = bump(session)
            after = in_sync(reader)
            assert listener.backend_pid != first_pid  # type: ignore[attr-defined]
            assert listener.seen() == value and after != before
        finally:
            writer.dispose()
            reader.dispose()


@pytest.mark.postgres
def test_postgresql_a_silent_listener_goes_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a successful heartbeat for STALE_AFTER seconds the token is unknown (None)."""
    monkeypatch.setattr(key_generation, "HEARTBEAT", 60.0)
    monkeypatch.setattr(key_generation, "STALE_AFTER", 0.3)
    with fresh_database() as url:
        db = Database(url)
        db.migrate()
        try:
            in_sync(db)
            time.sleep(0.4)
            assert db.key_generation.current() is None
        finally:
            db.dispose()


def test_a_disposed_database_trusts_nothing(database: Database) -> None:
    in_sync(database)
    database.dispose()
    assert database.key_generation.current() is None
