"""What the software token (``soft.py``) needs from persistence: a store of sealed key records per partition.

The token depends on these protocols only; ``hsmgate.store.soft_keys.SoftKeyRepository`` satisfies them
structurally, without importing this package (``hsm`` and ``store`` do not import each other). The store
keeps what it is given and nothing else: sealing and unsealing happen in the token, so the store only ever
sees key material encrypted under the master key.

Records are identified by label within the store's partition. Every write must become visible to
:attr:`SealedKeyStore.key_generation` of every process sharing the store: the token trusts its cache of
unsealed keys only while that generation has not moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


class SealedKeyRecord(Protocol):
    """One key as stored: its description in clear, its material sealed (read-only view)."""

    @property
    def label(self) -> str: ...
    @property
    def key_id(self) -> bytes | None: ...  # CKA_ID-like identifier given at generation, if any
    @property
    def key_type(self) -> str: ...  # a base.KeyType value
    @property
    def key_size(self) -> int | None: ...  # bits; None for post-quantum keys
    @property
    def curve_oid(self) -> str | None: ...  # dotted OID of an EC or Edwards key
    @property
    def attributes(self) -> Mapping[str, bool]: ...  # base.KeyAttributes field -> value
    @property
    def public_key(self) -> bytes | None: ...  # DER SubjectPublicKeyInfo of an asymmetric key
    @property
    def sealed_material(self) -> bytes: ...  # AES-256-GCM ciphertext ‖ tag of the key material
    @property
    def nonce(self) -> bytes: ...  # the 96-bit sealing nonce, fresh per record: identifies this version
    @property
    def created_at(self) -> datetime: ...  # a store may drop the time zone; the token reads it as UTC
    @property
    def derivation(self) -> Mapping[str, str | int | None] | None: ...  # derivation.NodeInfo.to_record()
    @property
    def next_index(self) -> int | None: ...  # stateful keys: the next one-time key index


@dataclass(frozen=True, slots=True)
class SealedKey:
    """The record the token writes (a :class:`SealedKeyRecord`)."""

    label: str
    key_id: bytes | None
    key_type: str
    key_size: int | None
    curve_oid: str | None
    attributes: Mapping[str, bool]
    public_key: bytes | None
    sealed_material: bytes
    nonce: bytes
    created_at: datetime
    derivation: Mapping[str, str | int | None] | None = None
    next_index: int | None = None


class KeyGenerationReader(Protocol):
    """The change counter of the key store, as ``store/key_generation.py`` describes it."""

    def current(self) -> object | None:
        """A token that differs whenever any record may have changed since it was returned (compare with
        ``==`` only), or None when that is unknown: then no cache may be trusted."""
        ...


@runtime_checkable
class SealedKeyStore(Protocol):
    """The sealed records of one partition."""

    @property
    def DuplicateLabel(self) -> type[Exception]:
        """The exception :meth:`add` raises when the label is taken (exposed on the store, as PEP 249
        drivers expose ``connection.IntegrityError``, so the token catches it without importing the store)."""
        ...

    @property
    def key_generation(self) -> KeyGenerationReader:
        """The change counter of the database the records live in."""
        ...

    def add(self, record: SealedKeyRecord) -> None:
        """Store a new record; raises :attr:`DuplicateLabel` (and stores nothing) when the label is taken."""
        ...

    def get(self, label: str) -> SealedKeyRecord | None:
        """The record of ``label``, or None."""
        ...

    def labels(self) -> list[str]:
        """Every label of the partition, sorted."""
        ...

    def remove(self, label: str) -> bool:
        """Delete the record of ``label``; True when there was one."""
        ...

    def record_nonce(self, label: str) -> bytes | None:
        """Only the sealing nonce of ``label``'s record (one cheap lookup), or None when there is none."""
        ...

    def reserve_index(self, label: str, limit: int) -> int | None:
        """Advance the record's ``next_index`` by one in its own committed transaction and return the
        index it had — or None (changing nothing) when it has reached ``limit`` or there is no such
        record. Atomic across threads, processes and instances sharing the database: no two calls
        ever return the same index for one record."""
        ...

    def next_index(self, label: str) -> int | None:
        """The record's ``next_index`` as committed now (None: no record, or not a stateful key)."""
        ...
