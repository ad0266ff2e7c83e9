"""Repository of ``partition_bindings``: which token each partition's state belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.models import PartitionBinding


@dataclass(frozen=True, slots=True)
class BoundToken:
    """A stored binding (the columns of :class:`PartitionBinding` but the partition and time)."""

    backend: str
    token_label: str | None
    token_serial: str | None
    key_fingerprint: str | None


class BindingRepository:
    """Rows of the ``partition_bindings`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, partition: str) -> BoundToken | None:
        with self._db.session() as session:
            row = session.get(PartitionBinding, partition)
            if row is None:
                return None
            return BoundToken(row.backend, row.token_label, row.token_serial, row.key_fingerprint)

    def add(self, partition: str, token: BoundToken, *, when: datetime) -> bool:
        """Record the binding; False when the partition was bound meanwhile (another process)."""
        try:
            with self._db.session() as session:
                session.add(PartitionBinding(partition=partition, backend=token.backend, token_label=token.token_label,
                                             token_serial=token.token_serial, key_fingerprint=token.key_fingerprint,
                                             bound_at=when))
        except IntegrityError:
            return False
        return True

    def remove(self, partition: str) -> None:
        with self._db.session() as session:
            session.execute(delete(PartitionBinding).where(PartitionBinding.partition == partition))

    def partitions(self) -> list[str]:
        with self._db.session() as session:
            return list(session.scalars(select(PartitionBinding.partition).order_by(PartitionBinding.partition)))
