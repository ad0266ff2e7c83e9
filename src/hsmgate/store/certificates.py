"""Repository of the certificates attached to keys (one per key label)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.models import CertificateRecord


class CertificateRepository:
    """DER certificates of one partition, keyed by key label."""

    def __init__(self, db: Database, partition: str) -> None:
        self._db = db
        self._partition = partition

    def get(self, label: str) -> bytes | None:
        with self._db.session() as session:
            return session.scalar(
                select(CertificateRecord.der).where(
                    CertificateRecord.partition == self._partition, CertificateRecord.label == label
                )
            )

    def put(self, label: str, der: bytes, when: datetime) -> None:
        """Attach ``der`` to ``label``, replacing any certificate it had."""
        where = (CertificateRecord.partition == self._partition, CertificateRecord.label == label)
        for _attempt in (1, 2):
            with self._db.session() as session:
                if session.execute(update(CertificateRecord).where(*where).values(der=der, updated_at=when)).rowcount:
                    return
            try:
                with self._db.session() as session:
                    session.add(CertificateRecord(partition=self._partition, label=label, der=der, updated_at=when))
                return
            except IntegrityError:  # inserted concurrently: update that row
                continue

    def remove(self, label: str) -> bool:
        with self._db.session() as session:
            result = session.execute(
                delete(CertificateRecord).where(
                    CertificateRecord.partition == self._partition, CertificateRecord.label == label
                )
            )
            return bool(result.rowcount)
