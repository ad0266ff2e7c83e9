"""Repository of hsmgate's own per-key metadata (creation time; later policy and password)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.models import KeyMetadata


class KeyMetadataRepository:
    """Metadata rows of one partition, keyed by label."""

    def __init__(self, db: Database, partition: str) -> None:
        self._db = db
        self._partition = partition

    def created_at(self, label: str) -> datetime | None:
        with self._db.session() as session:
            return session.scalar(
                select(KeyMetadata.created_at).where(
                    KeyMetadata.partition == self._partition, KeyMetadata.label == label
                )
            )

    def record_creation(self, label: str, when: datetime) -> datetime:
        """Remember when a key was first seen; keeps the earlier time if one is stored."""
        try:
            with self._db.session() as session:
                session.add(KeyMetadata(partition=self._partition, label=label, created_at=when))
            return when
        except IntegrityError:
            return self.created_at(label) or when

    def forget(self, label: str) -> None:
        with self._db.session() as session:
            session.execute(
                delete(KeyMetadata).where(KeyMetadata.partition == self._partition, KeyMetadata.label == label)
            )
