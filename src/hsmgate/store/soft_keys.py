"""Repository of the software token's sealed key records."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.models import SoftKeyRecord


class DuplicateLabel(Exception):
    """A record with this (partition, label) already exists."""


class SoftKeyRepository:
    """Reads and writes :class:`SoftKeyRecord` rows of one partition."""

    def __init__(self, db: Database, partition: str) -> None:
        self._db = db
        self._partition = partition

    def add(self, record: SoftKeyRecord) -> None:
        """Insert a record; raises DuplicateLabel when the label is taken."""
        record.partition = self._partition
        try:
            with self._db.session() as session:
                session.add(record)
        except IntegrityError as exc:
            raise DuplicateLabel(record.label) from exc

    def get(self, label: str) -> SoftKeyRecord | None:
        with self._db.session() as session:
            return session.scalar(
                select(SoftKeyRecord).where(
                    SoftKeyRecord.partition == self._partition, SoftKeyRecord.label == label
                )
            )

    def labels(self) -> list[str]:
        with self._db.session() as session:
            rows = session.scalars(
                select(SoftKeyRecord.label)
                .where(SoftKeyRecord.partition == self._partition)
                .order_by(SoftKeyRecord.label)
            )
            return list(rows)

    def remove(self, label: str) -> bool:
        """Delete a record; True when one existed."""
        with self._db.session() as session:
            result = session.execute(
                delete(SoftKeyRecord).where(
                    SoftKeyRecord.partition == self._partition, SoftKeyRecord.label == label
                )
            )
            return bool(result.rowcount)
