"""Repository of hsmgate's own per-key metadata (creation time, password hash, origin, SKA policy,
the internal-key flag).

Every write advances the key generation in its transaction (``store/key_generation.py``). The
columns read on every use of a key — the password hash, the SKA guard bits and the internal flag,
together a :class:`KeyState` — are kept in a small per-repository cache valid for one key
generation token: while nothing changed key state anywhere, a use costs no query (see
:meth:`KeyMetadataRepository.state`).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from hsmgate.store.database import Database
from hsmgate.store.key_generation import bump
from hsmgate.store.models import KeyMetadata

#: Labels whose :class:`KeyState` one repository remembers by default; when full, it starts over (a server
#: passes ``HSMGATE_KEY_CACHE_SIZE``: keys used round-robin beyond the size would each cost a query).
HOT_CACHE_SIZE = 8192

_HOT_SQL = "SELECT password_hash, policy_guard, internal FROM key_metadata WHERE partition = ? AND label = ?"


class KeyFacts(NamedTuple):
    """What a key's description takes from hsmgate's metadata rather than from its backend."""

    origin: str | None = None  # None or ``generated``; ``imported`` for imported and unwrapped keys
    public_only: bool = False  # an imported public key (or certificate) without its private key
    key_id: str | None = None  # the ``id`` the caller gave at creation


class KeyState(NamedTuple):
    """What every use of a key checks: its password hash (None: no password), its SKA guard bits
    (None: no policy) and whether hsmgate keeps it for itself."""

    password_hash: str | None = None
    guard: int | None = None
    internal: bool = False


NO_STATE = KeyState()


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC. Written as UTC because SQLite keeps the wall time and drops the offset (a
    +02:00 time would read back two hours off); a naive value, as SQLite returns it, is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class KeyMetadataRepository:
    """Metadata rows of one partition, keyed by label."""

    def __init__(self, db: Database, partition: str, *, hot_cache_size: int = HOT_CACHE_SIZE) -> None:
        self._db = db
        self._partition = partition
        self._hot_size = hot_cache_size
        # (key generation token, label -> KeyState); replaced, never mutated across tokens, so a
        # reader holding the tuple sees one token's entries only
        self._hot: tuple[object | None, dict[str, KeyState]] = (None, {})
        self._hot_lock = threading.Lock()

    def created_at(self, label: str) -> datetime | None:
        """When a key was first seen (aware, UTC), or None without a row."""
        with self._db.session() as session:
            created = session.scalar(
                select(KeyMetadata.created_at).where(
                    KeyMetadata.partition == self._partition, KeyMetadata.label == label
                )
            )
        return None if created is None else _utc(created)

    def record_creation(self, label: str, when: datetime) -> datetime:
        """Remember when a key was first seen; keeps the earlier time if one is stored. Returns the
        stored time in UTC."""
        when = _utc(when)
        try:
            with self._db.session() as session:
                bump(session)
                session.add(KeyMetadata(partition=self._partition, label=label, created_at=when))
            return when
        except IntegrityError:
            return self.created_at(label) or when

    def record_new_key(self, label: str, when: datetime, *, key_id: str | None) -> datetime:
        """Remember a key hsmgate just created, with the ``id`` its caller gave (None: none): like
        :meth:`record_creation`, and the id replaces whatever a row reserved earlier held."""
        try:
            with self._db.session() as session:
                bump(session)
                session.add(KeyMetadata(partition=self._partition, label=label, created_at=when, key_id=key_id))
            return when
        except IntegrityError:
            self._update(label, key_id=key_id)
            return self.created_at(label) or when

    def forget(self, label: str) -> None:
        with self._db.session() as session:
            bump(session)
            session.execute(
                delete(KeyMetadata).where(KeyMetadata.partition == self._partition, KeyMetadata.label == label)
            )

    # -- key passwords and origin (domain/passwords.py, domain/key_transfer.py) ------------------

    def state(self, label: str) -> KeyState:
        """Password hash, SKA guard bits and internal flag of a key (:data:`NO_STATE` without a row).

        Read on every key operation: from the hot cache while the key generation is unchanged,
        else one indexed lookup of the hot columns (:meth:`Database.quick_row`, no ORM)."""
        return self._hot_row(label)

    def password_hash(self, label: str) -> str | None:
        """The stored password hash of a key, or None when it has no password (or no row)."""
        return self._hot_row(label).password_hash

    def mark_internal(self, label: str, *, when: datetime) -> None:
        """Flag ``label`` as a key hsmgate keeps for itself (creating its row if needed), so that
        no caller can use, delete or create a key of that name. Idempotent."""
        if self.state(label).internal:
            return
        if not self._update(label, internal=True):
            try:
                with self._db.session() as session:
                    bump(session)
                    session.add(KeyMetadata(partition=self._partition, label=label, created_at=when, internal=True))
            except IntegrityError:
                self._update(label, internal=True)

    def reserve(self, label: str, when: datetime, *, password_hash: str | None) -> bool:
        """Insert the row of a key about to be created, with its password hash, so the key is
        never usable without its password; False when a row for ``label`` exists already."""
        try:
            with self._db.session() as session:
                bump(session)
                session.add(KeyMetadata(partition=self._partition, label=label, created_at=_utc(when),
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
        """Record that a key was imported or unwrapped (and whether only its public half exists);
        such a key has no caller ``id``."""
        if not self._update(label, origin=origin, public_only=public_only, key_id=None):
            try:
                with self._db.session() as session:
                    bump(session)
                    session.add(KeyMetadata(partition=self._partition, label=label, created_at=_utc(when),
                                            origin=origin, public_only=public_only))
            except IntegrityError:
                self._update(label, origin=origin, public_only=public_only)

    def facts(self, label: str) -> KeyFacts:
        """Origin, public-only flag and caller id of a key (:class:`KeyFacts` defaults without a row)."""
        with self._db.session() as session:
            row = session.execute(
                select(KeyMetadata.origin, KeyMetadata.public_only, KeyMetadata.key_id).where(
                    KeyMetadata.partition == self._partition, KeyMetadata.label == label
                )
            ).first()
        if row is None:
            return KeyFacts()
        return KeyFacts(row[0], bool(row[1]), row[2])

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
            bump(session)
            result = session.execute(
                update(KeyMetadata)
                .where(KeyMetadata.partition == self._partition, KeyMetadata.label == label)
                .values(**values)
            )
            return bool(result.rowcount)

    # -- SKA policy and address (domain/keys.py, domain/ska/guard.py) ----------------------------

    def policy_guard(self, label: str) -> int | None:
        """The SKA guard bits of a key (None: no policy), from the hot cache like :meth:`state`."""
        return self._hot_row(label).guard

    def _hot_row(self, label: str) -> KeyState:
        """The :class:`KeyState` of ``label``; :data:`NO_STATE` without a row — remembered too,
        since most keys have none. The token is read *before* the query, so an entry is never
        older than the token it is filed under."""
        token = self._db.key_generation.current()
        if token is not None:
            hot_token, entries = self._hot
            if hot_token == token:
                hit = entries.get(label)
                if hit is not None:
                    return hit
        row = self._db.quick_row(_HOT_SQL, (self._partition, label))
        value = NO_STATE if row is None else KeyState(
            None if row[0] is None else str(row[0]), None if row[1] is None else int(row[1]), bool(row[2]))
        if token is not None:
            with self._hot_lock:
                hot_token, entries = self._hot
                if hot_token != token or len(entries) >= self._hot_size:
                    entries = {}
                    self._hot = (token, entries)
                entries[label] = value
        return value

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
                bump(session)
                session.add(KeyMetadata(partition=self._partition, label=label, created_at=_utc(when), policy=policy,
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
