"""Repository of the software token's sealed key records.

Every write advances the key generation in its transaction (``store/key_generation.py``), so the
soft token's cache of unsealed keys (``hsm/soft.py``) learns of it in every process. The token sees
this repository only through its own protocol (``hsm/sealed_store.py``), which it satisfies
structurally: neither package imports the other."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.key_generation import KeyGeneration, bump
from hsmgate.store.models import SoftKeyRecord

_NONCE_SQL = "SELECT nonce FROM soft_keys WHERE partition = ? AND label = ?"


class DuplicateLabel(Exception):
    """A record with this (partition, label) already exists."""


class SoftKeyFields(Protocol):
    """What :meth:`SoftKeyRepository.add` reads from a record: the columns of a ``soft_keys`` row
    but ``id`` and ``partition``. A :class:`SoftKeyRecord` has them, and so has the soft token's own
    record type."""

    @property
    def label(self) -> str: ...
    @property
    def key_id(self) -> bytes | None: ...
    @property
    def key_type(self) -> str: ...
    @property
    def key_size(self) -> int | None: ...
    @property
    def curve_oid(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, bool]: ...
    @property
    def public_key(self) -> bytes | None: ...
    @property
    def sealed_material(self) -> bytes: ...
    @property
    def nonce(self) -> bytes: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def derivation(self) -> Mapping[str, str | int | None] | None: ...
    @property
    def next_index(self) -> int | None: ...


class SoftKeyRepository:
    """Reads and writes :class:`SoftKeyRecord` rows of one partition."""

    #: Raised by :meth:`add`; also reachable here for callers that do not import this module.
    DuplicateLabel: ClassVar[type[DuplicateLabel]] = DuplicateLabel

    def __init__(self, db: Database, partition: str) -> None:
        self._db = db
        self._partition = partition

    def add(self, record: SoftKeyFields) -> None:
        """Insert a row with the fields of ``record``; raises DuplicateLabel when the label is taken."""
        row = SoftKeyRecord(
            partition=self._partition, label=record.label, key_id=record.key_id, key_type=record.key_type,
            key_size=record.key_size, curve_oid=record.curve_oid, attributes=dict(record.attributes),
            public_key=record.public_key, sealed_material=record.sealed_material, nonce=record.nonce,
            created_at=record.created_at,
            derivation=dict(record.derivation) if record.derivation is not None else None,
            next_index=record.next_index,
        )
        try:
            with self._db.session() as session:
                bump(session)
                session.add(row)
        except IntegrityError as exc:
            raise DuplicateLabel(record.label) from exc

    @property
    def key_generation(self) -> KeyGeneration:
        """The reader of the key generation of this repository's database."""
        return self._db.key_generation

    def get(self, label: str) -> SoftKeyRecord | None:
        with self._db.session() as session:
            return session.scalar(
                select(SoftKeyRecord).where(
                    SoftKeyRecord.partition == self._partition, SoftKeyRecord.label == label
                )
            )

    def record_nonce(self, label: str) -> bytes | None:
        """The sealing nonce of the label's record, or None when there is none.

        Every record is sealed under a fresh random 96-bit nonce, so the nonce identifies one
        version of one record: a process that caches unsealed keys compares it with the nonce it
        unsealed to learn at once that another process deleted the key or replaced it under the
        same label (row ids would not do: SQLite reuses the highest rowid after a delete). One
        indexed lookup through :meth:`Database.quick_scalar`, no ORM."""
        value = self._db.quick_scalar(_NONCE_SQL, (self._partition, label))
        return None if value is None else bytes(value)  # type: ignore[arg-type]

    def reserve_index(self, label: str, limit: int) -> int | None:
        """``SealedKeyStore.reserve_index``: one ``UPDATE … SET next_index = next_index + 1 WHERE …
        next_index < limit RETURNING next_index``, committed before it returns. The row lock of the
        UPDATE (PostgreSQL) or the database write lock (SQLite) serialises concurrent callers, so
        each sees the value the previous one left. The key generation is not bumped: the key
        material did not change."""
        statement = (
            update(SoftKeyRecord)
            .where(SoftKeyRecord.partition == self._partition, SoftKeyRecord.label == label,
                   SoftKeyRecord.next_index.is_not(None), SoftKeyRecord.next_index < limit)
            .values(next_index=SoftKeyRecord.next_index + 1)
            .returning(SoftKeyRecord.next_index)
        )
        with self._db.session() as session:
            advanced = session.execute(statement).scalar_one_or_none()
        return None if advanced is None else int(advanced) - 1

    def next_index(self, label: str) -> int | None:
        with self._db.session() as session:
            value = session.scalar(select(SoftKeyRecord.next_index).where(
                SoftKeyRecord.partition == self._partition, SoftKeyRecord.label == label))
        return None if value is None else int(value)

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
            bump(session)
            result = session.execute(
                delete(SoftKeyRecord).where(
                    SoftKeyRecord.partition == self._partition, SoftKeyRecord.label == label
                )
            )
            return bool(result.rowcount)
