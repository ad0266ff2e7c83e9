"""The software token's persistence on SQLite and PostgreSQL: sealing at rest, restarts, partitions,
and several processes (here: several SoftPartition objects, each with its own engine) sharing one
database and one master key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
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
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.models import SoftKeyRecord
from hsmgate.store.soft_keys import SoftKeyRepository

SIGNER = KeyAttributes(sign=True, destroyable=True)
ECDSA = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)
P256 = KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7")
ED25519 = KeySpec(KeyType.ED, curve_oid="1.3.101.112")
EDDSA = SignMechanism(SignScheme.EDDSA, None)



def _token(db: Database, master: bytes, partition: str = "p") -> SoftPartition:
    return SoftPartition(partition, repository=SoftKeyRepository(db, partition), master_key=master)


@pytest.fixture()
def second_process(database: Database) -> Iterator[Database]:
    """Another engine on the same database, as a second hsmgate process would have."""
    other = Database(database.url)
    try:
        yield other
    finally:
        other.dispose()


def test_private_material_is_sealed_at_rest(database: Database) -> None:
    token = _token(database, secrets.token_bytes(32))
    token.generate("aes", KeySpec(KeyType.AES, 256), KeyAttributes(decrypt=True))
    token.generate("ec", P256, SIGNER)
    with database.session() as session:
        records = {r.label: r for r in session.scalars(select(SoftKeyRecord))}
    assert len(records["aes"].sealed_material) == 32 + 16 and len(records["aes"].nonce) == 12
    assert records["ec"].public_key and records["ec"].public_key not in records["ec"].sealed_material
    assert records["ec"].nonce != records["aes"].nonce


def test_keys_survive_a_restart_and_need_the_same_master_key(database: Database, second_process: Database) -> None:
    master = secrets.token_bytes(32)
    first = _token(database, master)
    info = first.generate("ec", P256, SIGNER)
    first.close()
    again = _token(second_process, master)
    assert again.list_labels() == ["ec"]
    assert again.get("ec").created_at == info.created_at
    assert again.get("ec").created_at.tzinfo is not None
    assert again.verify("ec", ECDSA, b"m", again.sign("ec", ECDSA, b"m"))
    with pytest.raises(BackendUnavailable):
        _token(second_process, secrets.token_bytes(32)).sign("ec", ECDSA, b"m")


def test_a_record_moved_to_another_label_does_not_open(database: Database) -> None:
    token = _token(database, secrets.token_bytes(32))
    token.generate("a", P256, SIGNER)
    token.close()
    with database.session() as session:
        session.execute(update(SoftKeyRecord).where(SoftKeyRecord.label == "a").values(label="b"))
    with pytest.raises(BackendUnavailable):
        token.sign("b", ECDSA, b"m")


def test_partitions_do_not_see_each_other(database: Database) -> None:
    master = secrets.token_bytes(32)
    one, two = _token(database, master, "one"), _token(database, master, "two")
    one.generate("k", KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True))
    assert two.list_labels() == []
    two.generate("k", KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True))
    with pytest.raises(KeyExists):
        one.generate("k", KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True))


def test_a_key_created_by_one_process_signs_in_another_at_once(database: Database, second_process: Database) -> None:
    master = secrets.token_bytes(32)
    a, b = _token(database, master), _token(second_process, master)
    with pytest.raises(KeyNotFound):
        b.get("k")  # a miss is not cached
    a.generate("k", ED25519, SIGNER)
    assert a.verify("k", EDDSA, b"m", b.sign("k", EDDSA, b"m"))


def test_a_key_deleted_by_one_process_is_refused_by_another_at_once(database: Database,
                                                                   second_process: Database) -> None:
    master = secrets.token_bytes(32)
    a, b = _token(database, master), _token(second_process, master)
    a.generate("k", ED25519, SIGNER)
    b.sign("k", EDDSA, b"m")  # b now holds the unsealed key in its cache
    a.delete("k")
    with pytest.raises(KeyNotFound):
        b.sign("k", EDDSA, b"m")


def test_a_key_replaced_under_the_same_label_is_reloaded(database: Database, second_process: Database) -> None:
    master = secrets.token_bytes(32)
    a, b = _token(database, master), _token(second_process, master)
    a.generate("k", ED25519, SIGNER)
    b.sign("k", EDDSA, b"m")
    a.delete("k")
    new = a.generate("k", ED25519, SIGNER)
    assert b.get("k").public_key == new.public_key
