"""Repositories and migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from hsmgate.store.database import Database
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.models import Base, SoftKeyRecord
from hsmgate.store.soft_keys import DuplicateLabel, SoftKeyRepository


def _as_utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back (stored as UTC); PostgreSQL gives aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _record(label: str, **overrides: object) -> SoftKeyRecord:
    values: dict[str, object] = {
        "label": label, "key_id": b"\x00\xffid", "key_type": "EC", "key_size": 256,
        "curve_oid": "1.2.840.10045.3.1.7", "attributes": {"sign": True, "destroyable": True},
        "public_key": bytes(range(91)), "sealed_material": bytes(range(256)) * 2, "nonce": b"\x00" * 11 + b"\x01",
        "created_at": datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return SoftKeyRecord(**values)  # type: ignore[arg-type]


def test_models_match_the_latest_migration(database: Database) -> None:
    database.migrate()  # idempotent
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert {"soft_keys", "key_metadata", "alembic_version"} <= set(inspect(connection).get_table_names())


def test_concurrent_starts_migrate_once(database_url: str) -> None:
    """Several processes (here threads, each with its own engine) starting on one fresh database."""
    failures: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        db = Database(database_url)
        try:
            barrier.wait()
            db.migrate()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            failures.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    db = Database(database_url)
    with db.engine.connect() as connection:
        assert len(connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()) == 1
    db.dispose()


def test_soft_key_record_round_trip(database: Database) -> None:
    repo = SoftKeyRepository(database, "p")
    original = _record("k")
    repo.add(original)
    stored = repo.get("k")
    assert stored is not None
    assert stored.partition == "p"
    assert stored.sealed_material == bytes(range(256)) * 2 and stored.nonce == b"\x00" * 11 + b"\x01"
    assert stored.key_id == b"\x00\xffid" and stored.public_key == bytes(range(91))
    assert stored.attributes == {"sign": True, "destroyable": True}
    assert (stored.key_type, stored.key_size, stored.curve_oid) == ("EC", 256, "1.2.840.10045.3.1.7")
    assert _as_utc(stored.created_at) == datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    if database.dialect == "postgresql":
        assert stored.created_at.tzinfo is not None and stored.created_at.utcoffset() == timedelta(0)


def test_timestamps_keep_the_instant_whatever_the_offset(database: Database) -> None:
    """14:30:05+02:00 reads back as 12:30:05 UTC on both databases (SQLite keeps wall time only, so
    the repository writes UTC)."""
    repo = KeyMetadataRepository(database, "p")
    zurich = datetime(2026, 7, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    repo.record_creation("k", zurich)
    stored = repo.created_at("k")
    assert stored is not None
    assert stored == datetime(2026, 7, 1, 12, 30, 5, tzinfo=UTC) == zurich
    assert stored.utcoffset() == timedelta(0)


def test_duplicate_labels_are_refused_per_partition(database: Database) -> None:
    one, two = SoftKeyRepository(database, "one"), SoftKeyRepository(database, "two")
    one.add(_record("k"))
    with pytest.raises(DuplicateLabel):
        one.add(_record("k"))
    two.add(_record("k"))  # same label, other partition
    assert one.labels() == ["k"] and two.labels() == ["k"]


def test_labels_are_sorted_and_remove_reports_existence(database: Database) -> None:
    repo = SoftKeyRepository(database, "p")
    for label in ("b", "a", "c-ü"):
        repo.add(_record(label))
    assert repo.labels() == sorted(["a", "b", "c-ü"])
    assert repo.remove("b") is True
    assert repo.remove("b") is False
    assert repo.get("b") is None
    assert repo.labels() == sorted(["a", "c-ü"])


def test_record_nonce_changes_when_a_label_is_deleted_or_replaced(database: Database) -> None:
    repo = SoftKeyRepository(database, "p")
    other_db = Database(database.url)  # another process: its own engine and connection
    other_process = SoftKeyRepository(other_db, "p")
    assert repo.record_nonce("k") is None
    repo.add(_record("k", nonce=b"first-nonce!"))
    assert other_process.record_nonce("k") == b"first-nonce!"
    assert repo.remove("k")
    assert other_process.record_nonce("k") is None  # seen at once by another connection
    repo.add(_record("k", nonce=b"second-nonce"))
    assert other_process.record_nonce("k") == b"second-nonce"
    assert SoftKeyRepository(database, "other").record_nonce("k") is None
    other_db.dispose()


def test_quick_reads_survive_a_lost_connection(database: Database) -> None:
    repo = SoftKeyRepository(database, "p")
    repo.add(_record("k"))
    assert repo.record_nonce("k") is not None
    database._quick_conn.close()  # type: ignore[union-attr]  # e.g. the server restarted
    assert repo.record_nonce("k") is not None


def test_key_metadata_keeps_the_first_creation_time(database: Database) -> None:
    repo = KeyMetadataRepository(database, "p")
    first = datetime(2026, 1, 1, tzinfo=UTC)
    assert repo.record_creation("k", first) == first
    assert _as_utc(repo.record_creation("k", first + timedelta(days=1))) == first
    assert _as_utc(repo.created_at("k") or datetime.min) == first
    assert KeyMetadataRepository(database, "other").created_at("k") is None
    repo.forget("k")
    assert repo.created_at("k") is None
