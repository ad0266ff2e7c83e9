"""Repository of hsmgate's own per-key metadata (creation time; later policy and password)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
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

    # -- key passwords and origin (domain/passwords.py, domain/key_transfer.py) ------------------

    _PASSWORD_SQL = "SELECT password_hash FROM key_metadata WHERE partition = ? AND label = ?"

    def password_hash(self, label: str) -> str | None:
        """The stored password hash of a key, or None when it has no password (or no row).

        Read on every key operation, so through :meth:`Database.quick_scalar` where the database
        offers it (one indexed lookup, no ORM)."""
        quick = getattr(self._db, "quick_scalar", None)
        if quick is not None:
            value = quick(self._PASSWORD_SQL, (self._partition, label))
            return None if value is None else str(value)
        with self._db.session() as session:
            return session.scalar(
                select(KeyMetadata.password_hash).where(
                    KeyMetadata.partition == self._partition, KeyMetadata.label == label
                )
            )

    def reserve(self, label: str, when: datetime, *, password_hash: str | None) -> bool:
        """Insert the row of a key about to be created, with its password hash, so the key is
        never usable without its password; False when a row for ``label`` exists already."""
        try:
            with self._db.session() as session:
                session.add(KeyMetadata(partition=self._partition, label=label, created_at=when,
                                        password_hash=password_hash))
            return True
        except IntegrityError:
            return False

    def set_password_hash(self, label: str, password_hash: str | None, *, when: datetime) -> None:
        """Set (or with None clear) a key's password hash, creating its row if needed."""
        if not self._update(label, password_hash=password_hash) and \
                not self.reserve(label, when, password_hash=password_hash):
            self._update(label, password_hash=password_hash)  # inserted concurrently: update that row

    def set_origin(self, label: str, origin: str, *, public_only: bool, when: datetime) -> None:
        """Record that a key was imported or unwrapped (and whether only its public half exists)."""
        if not self._update(label, origin=origin, public_only=public_only):
            try:
                with self._db.session() as session:
                    session.add(KeyMetadata(partition=self._partition, label=label, created_at=when,
                                            origin=origin, public_only=public_only))
            except IntegrityError:
                self._update(label, origin=origin, public_only=public_only)

    def origin(self, label: str) -> tuple[str | None, bool]:
        """(origin, public_only) of a key; (None, False) for generated keys and unknown labels."""
        with self._db.session() as session:
            row = session.execute(
                select(KeyMetadata.origin, KeyMetadata.public_only).where(
                    KeyMetadata.partition == self._partition, KeyMetadata.label == label
                )
            ).first()
        if row is None:
            return None, False
        return row[0], bool(row[1])

    def _update(self, label: str, **values: object) -> bool:
        with self._db.session() as session:
            result = session.execute(
                update(KeyMetadata)
                .where(KeyMetadata.partition == self._partition, KeyMetadata.label == label)
                .values(**values)
            )
            return bool(result.rowcount)

    # -- SKA policy and address (domain/keys.py, domain/ska_guard.py) ----------------------------

    _GUARD_SQL = "SELECT policy_guard FROM key_metadata WHERE partition = ? AND label = ?"

    def policy_guard(self, label: str) -> int | None:
        """The SKA guard bits of a key (None: no policy). Read on every use of every key, so
        through :meth:`Database.quick_scalar` where the database offers it."""
        quick = getattr(self._db, "quick_scalar", None)
        if quick is not None:
            value = quick(self._GUARD_SQL, (self._partition, label))
            return None if value is None else int(value)  # type: ignore[call-overload]
        with self._db.session() as session:
            return session.scalar(
                select(KeyMetadata.policy_guard).where(
                    KeyMetadata.partition == self._partition, KeyMetadata.label == label
                )
            )

    def ska(self, label: str) -> tuple[str | None, str | None]:
        """(policy JSON, address format) of a key; (None, None) without policy or row."""
        with self._db.session() as session:
            row = session.execute(
                select(KeyMetadata.policy, KeyMetadata.address_format).where(
                    KeyMetadata.partition == self._partition, KeyMetadata.label == label
                )
            ).first()
        return (None, None) if row is None else (row[0], row[1])

    def reserve_ska(self, label: str, when: datetime, *, policy: str, guard: int,
                    address_format: str | None) -> bool:
        """Insert the row of an SKA key about to be generated, policy included, so the key is
        never usable without its policy; False when a row for ``label`` exists already."""
        try:
            with self._db.session() as session:
                session.add(KeyMetadata(partition=self._partition, label=label, created_at=when, policy=policy,
                                        policy_guard=guard, address_format=address_format))
            return True
        except IntegrityError:
            return False

    def put_ska(self, label: str, *, policy: str | None, guard: int | None, address_format: str | None) -> bool:
        """Set (or with None clear) all SKA columns of an existing row; False when there is none."""
        return self._update(label, policy=policy, policy_guard=guard, address_format=address_format)

    def set_ska(self, label: str, *, policy: str, guard: int, address_format: str | None = None,
                keep_address: bool = True) -> bool:
        """Replace the policy (and guard bits) of an existing row; False when there is no row."""
        values: dict[str, object] = {"policy": policy, "policy_guard": guard}
        if not keep_address:
            values["address_format"] = address_format
        return self._update(label, **values)
