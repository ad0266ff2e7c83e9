"""Repository of TSB data objects."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.models import DataObjectRecord


class DuplicateName(Exception):
    """A data object with this name already exists."""


class DataObjectRepository:
    """Data objects of one partition, keyed by name."""

    def __init__(self, db: Database, partition: str) -> None:
        self._db = db
        self._partition = partition

    def get(self, name: str) -> DataObjectRecord | None:
        with self._db.session() as session:
            return session.scalar(
                select(DataObjectRecord).where(
                    DataObjectRecord.partition == self._partition, DataObjectRecord.name == name
                )
            )

    def add(self, record: DataObjectRecord) -> None:
        """Insert; raises DuplicateName when the name is taken."""
        record.partition = self._partition
        try:
            with self._db.session() as session:
                session.add(record)
        except IntegrityError as exc:
            raise DuplicateName(record.name) from exc

    def replace_value(self, name: str, value: bytes, nonce: bytes | None) -> bool:
        with self._db.session() as session:
            result = session.execute(
                update(DataObjectRecord)
                .where(DataObjectRecord.partition == self._partition, DataObjectRecord.name == name)
                .values(value=value, nonce=nonce)
            )
            return bool(result.rowcount)

    def remove(self, name: str) -> bool:
        with self._db.session() as session:
            result = session.execute(
                delete(DataObjectRecord).where(
                    DataObjectRecord.partition == self._partition, DataObjectRecord.name == name
                )
            )
            return bool(result.rowcount)
