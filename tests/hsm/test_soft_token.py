"""The software token's sealing at rest and persistence."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update

from hsmgate.hsm.base import (
    BackendUnavailable,
    HashAlg,
    KeyAttributes,
    KeyExists,
    KeyNotFound,
    KeySpec,
    KeyType,
    SignMechanism,
    SignScheme,
)
from hsmgate.hsm.sealed_store import SealedKey, SealedKeyRecord, SealedKeyStore
from hsmgate.hsm.soft import Sealer, SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.models import SoftKeyRecord
from hsmgate.store.soft_keys import SoftKeyRepository

SIGNER = KeyAttributes(sign=True, destroyable=True)
ECDSA = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)


def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    db.migrate()
    return db


def test_sealer_binds_partition_and_label() -> None:
    sealer = Sealer(secrets.token_bytes(32))
    nonce, sealed = sealer.seal("p1", "label", b"secret material")
    assert b"secret material" not in sealed
    assert sealer.open("p1", "label", nonce, sealed) == b"secret material"
    with pytest.raises(BackendUnavailable):
        sealer.open("p1", "other-label", nonce, sealed)
    with pytest.raises(BackendUnavailable):
        sealer.open("p2", "label", nonce, sealed)


def test_nonces_are_fresh_per_record() -> None:
    sealer = Sealer(secrets.token_bytes(32))
    assert sealer.seal("p", "l", b"x")[0] != sealer.seal("p", "l", b"x")[0]


def test_master_key_must_be_256_bits() -> None:
    with pytest.raises(ValueError):
        Sealer(b"short")


def test_private_material_is_never_stored_in_clear(tmp_path: Path) -> None:
    """Neither a secret key nor a private key (PKCS#8 or its raw scalar) is found in the database files."""
    db = _db(tmp_path)
    token = SoftPartition("p", repository=SoftKeyRepository(db, "p"), master_key=secrets.token_bytes(32))
    exportable = KeyAttributes(sign=True, decrypt=True, extractable=True, sensitive=False)
    token.generate("aes", KeySpec(KeyType.AES, 256), exportable)
    token.generate("ec", KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7"), exportable)
    secret = token.export_key("aes").secret_key
    pkcs8 = token.export_key("ec").private_key
    assert secret is not None and len(secret) == 32 and pkcs8 is not None
    private = serialization.load_der_private_key(pkcs8, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    scalar = private.private_numbers().private_value.to_bytes(32, "big")
    with db.session() as session:
        records = session.scalars(select(SoftKeyRecord)).all()
        assert {len(r.sealed_material) for r in records if r.label == "aes"} == {32 + 16}
        assert all(len(r.nonce) == 12 for r in records)
    db.dispose()
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("state.db*"))  # the WAL too
    assert stored, "no database file"
    for material in (secret, pkcs8, scalar):
        assert material not in stored


def test_keys_survive_a_restart_and_need_the_same_master_key(tmp_path: Path) -> None:
    master = secrets.token_bytes(32)
    db = _db(tmp_path)
    first = SoftPartition("p", repository=SoftKeyRepository(db, "p"), master_key=master)
    spki = first.generate("ec", KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7"), SIGNER).public_key
    first.close()
    again = SoftPartition("p", repository=SoftKeyRepository(db, "p"), master_key=master)
    assert again.list_labels() == ["ec"]
    public = serialization.load_der_public_key(spki or b"")
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(again.sign("ec", ECDSA, b"m"), b"m", ec.ECDSA(hashes.SHA256()))  # the key made before
    wrong = SoftPartition("p", repository=SoftKeyRepository(db, "p"), master_key=secrets.token_bytes(32))
    with pytest.raises(BackendUnavailable):
        wrong.sign("ec", ECDSA, b"m")


def test_a_record_moved_to_another_label_does_not_open(tmp_path: Path) -> None:
    db = _db(tmp_path)
    token = SoftPartition("p", repository=SoftKeyRepository(db, "p"), master_key=secrets.token_bytes(32))
    token.generate("a", KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7"), SIGNER)
    token.close()
    with db.session() as session:
        session.execute(update(SoftKeyRecord).where(SoftKeyRecord.label == "a").values(label="b"))
    with pytest.raises(BackendUnavailable):
        token.sign("b", ECDSA, b"m")


def test_partitions_do_not_see_each_other(tmp_path: Path) -> None:
    db = _db(tmp_path)
    master = secrets.token_bytes(32)
    one = SoftPartition("one", repository=SoftKeyRepository(db, "one"), master_key=master)
    two = SoftPartition("two", repository=SoftKeyRepository(db, "two"), master_key=master)
    one.generate("k", KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True))
    assert two.list_labels() == []
    two.generate("k", KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True))  # same label, other partition


class Generation:
    """A key generation that moves with every write of :class:`MemoryStore`."""

    def __init__(self) -> None:
        self.value = 0

    def current(self) -> object | None:
        return self.value


class MemoryStore:
    """A SealedKeyStore kept in a dict: everything the soft token may ask of persistence."""

    class DuplicateLabel(Exception):
        pass

    def __init__(self) -> None:
        self.records: dict[str, SealedKeyRecord] = {}
        self.key_generation = Generation()

    def add(self, record: SealedKeyRecord) -> None:
        if record.label in self.records:
            raise self.DuplicateLabel(record.label)
        self.records[record.label] = record
        self.key_generation.value += 1

    def get(self, label: str) -> SealedKeyRecord | None:
        return self.records.get(label)

    def labels(self) -> list[str]:
        return sorted(self.records)

    def remove(self, label: str) -> bool:
        self.key_generation.value += 1
        return self.records.pop(label, None) is not None

    def record_nonce(self, label: str) -> bytes | None:
        record = self.records.get(label)
        return None if record is None else record.nonce

    def reserve_index(self, label: str, limit: int) -> int | None:
        record = self.records.get(label)
        if record is None or record.next_index is None or record.next_index >= limit:
            return None
        self.records[label] = replace(record, next_index=record.next_index + 1)  # type: ignore[type-var]
        return record.next_index

    def next_index(self, label: str) -> int | None:
        record = self.records.get(label)
        return None if record is None else record.next_index


def test_the_database_repository_is_a_sealed_key_store(tmp_path: Path) -> None:
    repository = SoftKeyRepository(_db(tmp_path), "p")
    assert isinstance(repository, SealedKeyStore)
    assert issubclass(repository.DuplicateLabel, Exception)


def test_the_soft_token_needs_nothing_but_a_sealed_key_store() -> None:
    store = MemoryStore()
    assert isinstance(store, SealedKeyStore)
    token = SoftPartition("p", repository=store, master_key=secrets.token_bytes(32))
    info = token.generate("ec", KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7"), SIGNER)
    assert isinstance(store.records["ec"], SealedKey) and store.records["ec"].public_key == info.public_key
    with pytest.raises(KeyExists):
        token.generate("ec", KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True))
    assert token.verify("ec", ECDSA, b"m", token.sign("ec", ECDSA, b"m"))
    assert token.list_labels() == ["ec"]
    # the record replaced behind the token's back (another process): the cached key is not used
    store.records["ec"] = replace(store.records["ec"], nonce=b"\0" * 12)
    store.key_generation.value += 1
    with pytest.raises(BackendUnavailable):  # the sealed material does not open under another nonce
        token.sign("ec", ECDSA, b"m")
    token.delete("ec")
    with pytest.raises(KeyNotFound):
        token.get("ec")
    assert store.labels() == []
