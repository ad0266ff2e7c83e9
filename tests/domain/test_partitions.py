"""``PartitionRegistry.remove``: hsmgate's own keys (attestation, SKA timestamp, data-object key) are
not the user's keys, and ``--purge`` leaves nothing of the partition behind but its attestation key
(certificates, data objects, wrapped-key records and SKA requests go with the keys)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hsmgate.domain.partitions import PartitionConfig, PartitionError, PartitionRegistry
from hsmgate.store.database import Database
from hsmgate.store.models import (
    CertificateRecord,
    DataObjectRecord,
    KeyMetadata,
    SkaRequestRow,
    SkaTaskRow,
    SoftKeyRecord,
    WrappedKeyRecord,
)
from hsmgate.store.partitions import PartitionRepository

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TABLES = (SoftKeyRecord, KeyMetadata, CertificateRecord, DataObjectRecord, WrappedKeyRecord, SkaRequestRow,
          SkaTaskRow)


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.migrate()
    return database


def add_key(db: Database, partition: str, label: str) -> None:
    with db.session() as session:
        session.add(SoftKeyRecord(partition=partition, label=label, key_type="EC", attributes={},
                                  sealed_material=b"sealed", nonce=b"n" * 12, created_at=NOW))
        session.add(KeyMetadata(partition=partition, label=label, created_at=NOW))


def add_partition_data(db: Database, partition: str, label: str, *, data_object: bool = True) -> None:
    """A certificate, a wrapped-key record, an SKA request with a task (and a data object)."""
    with db.session() as session:
        session.add(CertificateRecord(partition=partition, label=label, der=b"der", updated_at=NOW))
        session.add(WrappedKeyRecord(partition=partition, digest=f"{partition}-{label}", key_type="AES",
                                     created_at=NOW))
        request_id = f"{partition}-{label}-request"[:36]
        session.add(SkaRequestRow(id=request_id, partition=partition, kind="SIGN", key_label=label, status="PENDING",
                                  operation=0, request="{}", created_at=NOW))
        session.flush()
        session.add(SkaTaskRow(id=f"{request_id}-t"[:36], request_id=request_id, partition=partition, kind="SIGN",
                               approver=b"spki", state="OPEN", created_at=NOW, last_fetched_at=NOW))
        if data_object:
            session.add(DataObjectRecord(partition=partition, name=f"object-{label}", value=b"v", private=False,
                                         modifiable=True, destroyable=True, created_at=NOW))


def rows(db: Database, partition: str) -> dict[str, int]:
    with db.session() as session:
        return {table.__tablename__: int(session.scalar(select(func.count()).select_from(table)
                                                         .where(table.partition == partition)) or 0)
                for table in TABLES}


def registry(db: Database, *names: str) -> PartitionRegistry:
    reg = PartitionRegistry(PartitionRepository(db), master_key=None)
    for name in names:
        reg.add(PartitionConfig(name=name, backend="soft"))
    return reg


def test_service_keys_are_not_user_keys(db: Database) -> None:
    """The defaults name hsmgate's service keys: a partition holding only them is removed without
    --purge (the timestamp key made at every start-up used to count as a user key)."""
    reg = registry(db, "team-b")
    for label in ("attestation-key", "timestamp-key", "hsmgate-data-object-key"):
        add_key(db, "team-b", label)
    assert reg.remove("team-b") == 0
    assert PartitionRepository(db).soft_key_labels("team-b") == ["attestation-key"]  # kept for the audit log


def test_settings_names_of_the_service_keys_are_used(db: Database) -> None:
    reg = registry(db, "team-b")
    for label in ("my-attestation", "my-timestamps"):
        add_key(db, "team-b", label)
    with pytest.raises(PartitionError, match=r"still holds 1 key\(s\) \(my-timestamps\)"):
        reg.remove("team-b", attestation_key_name="my-attestation")
    assert reg.remove("team-b", attestation_key_name="my-attestation", timestamp_key_name="my-timestamps") == 0


def test_user_keys_and_data_objects_need_purge(db: Database) -> None:
    reg = registry(db, "team-b", "team-c")
    add_key(db, "team-b", "attestation-key")
    add_key(db, "team-b", "b-key")
    with pytest.raises(PartitionError, match=r"still holds 1 key\(s\) \(b-key\)"):
        reg.remove("team-b")
    add_partition_data(db, "team-c", "gone-key")  # a data object, no key
    with pytest.raises(PartitionError, match=r"still holds 1 data object\(s\)"):
        reg.remove("team-c")


def test_purge_removes_every_row_of_the_partition_but_its_attestation_key(db: Database) -> None:
    reg = registry(db, "team-b", "team-c")
    for partition in ("team-b", "team-c"):
        for label in ("attestation-key", "timestamp-key", "b-key"):
            add_key(db, partition, label)
        add_partition_data(db, partition, "b-key")
    assert reg.remove("team-b", purge=True) == 1  # b-key (service keys are not counted)
    assert rows(db, "team-b") == {"soft_keys": 1, "key_metadata": 1, "certificates": 0, "data_objects": 0,
                                  "wrapped_keys": 0, "ska_requests": 0, "ska_tasks": 0}
    assert PartitionRepository(db).soft_key_labels("team-b") == ["attestation-key"]
    assert rows(db, "team-c") == {"soft_keys": 3, "key_metadata": 3, "certificates": 1, "data_objects": 1,
                                  "wrapped_keys": 1, "ska_requests": 1, "ska_tasks": 1}  # untouched
