"""Repository of the approvers of approver management (``store/models.py`` :class:`ApproverRecord`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.models import ApproverRecord


class DuplicateApprover(Exception):
    """An approver with this name already exists in the partition."""


class ApproverRepository:
    """Approvers of one partition, keyed by name."""

    def __init__(self, db: Database, partition: str) -> None:
        self._db = db
        self._partition = partition

    def _named(self, name: str) -> ColumnElement[bool]:
        return and_(ApproverRecord.partition == self._partition, ApproverRecord.name == name)

    def get(self, name: str) -> ApproverRecord | None:
        with self._db.session() as session:
            return session.scalar(select(ApproverRecord).where(self._named(name)))

    def all(self) -> list[ApproverRecord]:
        """Every approver of the partition, by name."""
        with self._db.session() as session:
            return list(session.scalars(
                select(ApproverRecord).where(ApproverRecord.partition == self._partition).order_by(ApproverRecord.name)))

    def add(self, record: ApproverRecord) -> None:
        """Insert; raises DuplicateApprover when the name is taken."""
        record.partition = self._partition
        try:
            with self._db.session() as session:
                session.add(record)
        except IntegrityError as exc:
            raise DuplicateApprover(record.name) from exc

    def set_code(self, name: str, code_hash: bytes, expires_at: datetime) -> bool:
        """A new pending one-time code (its hash); False when the approver does not exist."""
        return self._update(name, code_hash=code_hash, code_expires_at=expires_at)

    def reseal(self, name: str, *, oaep_hash: str, wrapped_data_key: bytes, backup: bytes, recovery: bytes,
               code_hash: bytes, expires_at: datetime) -> bool:
        """Replace the sealed backup (a new backup password) and set a new one-time code."""
        return self._update(name, oaep_hash=oaep_hash, wrapped_data_key=wrapped_data_key, backup=backup,
                            recovery=recovery, code_hash=code_hash, code_expires_at=expires_at)

    def redeem(self, name: str, code_hash: bytes, now: datetime) -> bool:
        """Use the pending code ``code_hash`` once: True for exactly one caller (a conditional
        UPDATE), which marks the approver onboarded at ``now``."""
        with self._db.session() as session:
            result = session.execute(
                update(ApproverRecord)
                .where(self._named(name), ApproverRecord.code_hash == code_hash)
                .values(code_hash=None, code_expires_at=None, onboarded_at=now))
            return bool(result.rowcount)

    def remove(self, name: str) -> bool:
        with self._db.session() as session:
            return bool(session.execute(delete(ApproverRecord).where(self._named(name))).rowcount)

    def _update(self, name: str, **values: object) -> bool:
        with self._db.session() as session:
            result = session.execute(update(ApproverRecord).where(self._named(name)).values(**values))
            return bool(result.rowcount)
