"""Repository of the partitions kept in the state database (``hsmgate partition …``)."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.key_generation import bump
from hsmgate.store.models import (
    ApproverRecord,
    CertificateRecord,
    DataObjectRecord,
    KeyMetadata,
    PartitionBinding,
    PartitionRecord,
    SkaRequestRow,
    SkaTaskRow,
    SoftKeyRecord,
    WrappedKeyRecord,
)


class DuplicatePartition(Exception):
    """A partition with this name already exists."""


class PartitionRepository:
    """Rows of the ``partitions`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, record: PartitionRecord) -> None:
        try:
            with self._db.session() as session:
                session.add(record)
        except IntegrityError as exc:
            raise DuplicatePartition(record.name) from exc

    def all(self) -> list[PartitionRecord]:
        with self._db.session() as session:
            return list(session.scalars(select(PartitionRecord).order_by(PartitionRecord.name)))

    def get(self, name: str) -> PartitionRecord | None:
        with self._db.session() as session:
            return session.scalar(select(PartitionRecord).where(PartitionRecord.name == name))

    def remove(self, name: str) -> bool:
        """Forget the partition and which token it was bound to (``partition_bindings``)."""
        with self._db.session() as session:
            session.execute(delete(PartitionBinding).where(PartitionBinding.partition == name))
            return bool(session.execute(delete(PartitionRecord).where(PartitionRecord.name == name)).rowcount)

    def soft_key_labels(self, name: str) -> list[str]:
        """Labels of the soft-token keys stored for partition ``name``."""
        with self._db.session() as session:
            return list(session.scalars(select(SoftKeyRecord.label).where(SoftKeyRecord.partition == name)
                                        .order_by(SoftKeyRecord.label)))

    def data_object_count(self, name: str) -> int:
        """Data objects stored for partition ``name``."""
        with self._db.session() as session:
            return int(session.scalar(select(func.count()).select_from(DataObjectRecord)
                                      .where(DataObjectRecord.partition == name)) or 0)

    def approver_count(self, name: str) -> int:
        """Approvers of approver management in partition ``name``."""
        with self._db.session() as session:
            return int(session.scalar(select(func.count()).select_from(ApproverRecord)
                                      .where(ApproverRecord.partition == name)) or 0)

    def purge_keys(self, name: str, *, keep: str | None = None) -> int:
        """Delete, in one transaction, the soft-token keys, key metadata and certificates of
        partition ``name`` except those of the key labelled ``keep``, and all its data objects,
        wrapped-key records, approvers and SKA requests with their tasks; returns the number of keys
        deleted."""
        kept = keep or ""
        with self._db.session() as session:
            bump(session)  # key state changes: every process's key caches must notice
            count = session.execute(delete(SoftKeyRecord).where(SoftKeyRecord.partition == name,
                                                                SoftKeyRecord.label != kept)).rowcount
            session.execute(delete(KeyMetadata).where(KeyMetadata.partition == name,
                                                      KeyMetadata.label != kept))
            session.execute(delete(CertificateRecord).where(CertificateRecord.partition == name,
                                                            CertificateRecord.label != kept))
            session.execute(delete(DataObjectRecord).where(DataObjectRecord.partition == name))
            session.execute(delete(WrappedKeyRecord).where(WrappedKeyRecord.partition == name))
            session.execute(delete(ApproverRecord).where(ApproverRecord.partition == name))
            session.execute(delete(SkaTaskRow).where(SkaTaskRow.partition == name))
            session.execute(delete(SkaRequestRow).where(SkaRequestRow.partition == name))
        return int(count or 0)
