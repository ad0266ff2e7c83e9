"""Repository remembering the key type of each blob ``/v1/wrap`` made (by SHA-256 of the blob)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.models import WrappedKeyRecord


class WrappedKeyRepository:
    """(blob digest → key type) of one partition. Holds no key material."""

    def __init__(self, db: Database, partition: str) -> None:
        self._db = db
        self._partition = partition

    def remember(self, digest: str, key_type: str, when: datetime) -> None:
        try:
            with self._db.session() as session:
                session.add(WrappedKeyRecord(partition=self._partition, digest=digest, key_type=key_type,
                                             created_at=when))
        except IntegrityError:  # the same blob again (RSA-OAEP blobs differ; AES-KW ones repeat)
            pass

    def key_type(self, digest: str) -> str | None:
        with self._db.session() as session:
            return session.scalar(
                select(WrappedKeyRecord.key_type).where(
                    WrappedKeyRecord.partition == self._partition, WrappedKeyRecord.digest == digest
                )
            )
