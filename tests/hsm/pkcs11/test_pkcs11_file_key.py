"""The PKCS#11 backend's ECDH for file decryption on SoftHSM2: the key equals the X9.63 KDF of
the ECDH secret computed with ``cryptography``, the shared secret is a session object that is gone
afterwards, and keys without derive or of another type are refused."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from hsmgate.hsm.base import KeyAttributes, KeySpec, KeyType, OperationNotPermitted, UnsupportedByBackend
from hsmgate.hsm.pkcs11 import Pkcs11Partition
from tests.softhsm import SoftHsmToken

pytestmark = pytest.mark.pkcs11
P384 = "1.3.132.0.34"


@pytest.fixture(scope="module")
def hsm(softhsm_factory: Callable[[str], SoftHsmToken]) -> SoftHsmToken:
    return softhsm_factory("unit-file-key")


@pytest.fixture(scope="module")
def partition(hsm: SoftHsmToken) -> Iterator[Pkcs11Partition]:
    # one session: the objects the derivation leaves would be in the one the next call gets
    part = Pkcs11Partition("files", module_path=hsm.module_path, token_label=hsm.token_label, pin=hsm.pin,
                           pool_size=1)
    yield part
    part.close()


def _secret_objects(partition: Pkcs11Partition) -> int:
    """Secret-key objects (token and session objects) the partition's one session sees."""
    return partition._call("count", None, lambda lease, ctx: len(list(
        lease.session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.SECRET_KEY}))))


def test_file_key_matches_cryptography_and_leaves_nothing(partition: Pkcs11Partition) -> None:
    label = f"file-{secrets.token_hex(4)}"
    info = partition.generate(label, KeySpec(KeyType.EC, curve_oid=P384), KeyAttributes(derive=True, decrypt=True))
    assert info.public_key is not None
    public = serialization.load_der_public_key(info.public_key)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    before = _secret_objects(partition)
    for _ in range(3):
        ephemeral = ec.generate_private_key(ec.SECP384R1())
        point = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.UncompressedPoint)
        header = b"header bytes " + point
        expected = X963KDF(hashes.SHA256(), 32, sharedinfo=header).derive(ephemeral.exchange(ec.ECDH(), public))
        assert partition.ecies_file_key(label, point, header) == expected
    assert _secret_objects(partition) == before


def test_refusals(partition: Pkcs11Partition) -> None:
    no_derive = f"file-nd-{secrets.token_hex(4)}"
    partition.generate(no_derive, KeySpec(KeyType.EC, curve_oid=P384), KeyAttributes(decrypt=True))
    point = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    with pytest.raises(OperationNotPermitted, match="derive"):
        partition.ecies_file_key(no_derive, point, b"h")
    aes = f"file-aes-{secrets.token_hex(4)}"
    partition.generate(aes, KeySpec(KeyType.AES, 256), KeyAttributes(decrypt=True, derive=True))
    with pytest.raises(UnsupportedByBackend, match="not an EC private key"):
        partition.ecies_file_key(aes, point, b"h")
