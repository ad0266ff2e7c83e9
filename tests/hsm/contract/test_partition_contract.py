"""The backend contract: every Partition implementation passes the same cases.

Signatures are checked with ``cryptography`` directly against the SubjectPublicKeyInfo the backend
reports — never only with the backend's own verify.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from hsmgate.hsm.base import (
    HashAlg,
    HsmError,
    KeyAttributes,
    KeyExists,
    KeyNotFound,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    Partition,
    SignMechanism,
    SignScheme,
    UnsupportedByBackend,
)
from tests.hsm.contract.backends import (
    BACKENDS,
    SIGN_CASES,
    SIGN_KEY_TYPES,
    mechanism_id,
    open_backend,
    params,
    unsupported,
)

P256 = "1.2.840.10045.3.1.7"
ED25519 = "1.3.101.112"
SIGNER = KeyAttributes(sign=True, sensitive=True, extractable=False, destroyable=True)

_HASH = {h: getattr(hashes, h.name)() for h in HashAlg}


@pytest.fixture(scope="module", params=BACKENDS)
def partition(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partition]:
    with open_backend(request.param, tmp_path_factory.mktemp(f"contract-{request.param}")) as backend:
        yield backend


@pytest.fixture(scope="module")
def signing_keys(partition: Partition) -> dict[KeyType, str]:
    labels = {}
    for key_type, spec in ((KeyType.RSA, KeySpec(KeyType.RSA, 2048)), (KeyType.EC, KeySpec(KeyType.EC, curve_oid=P256)),
                           (KeyType.ED, KeySpec(KeyType.ED, curve_oid=ED25519))):
        label = f"contract-{key_type}-{secrets.token_hex(3)}"
        partition.generate(label, spec, SIGNER)
        labels[key_type] = label
    return labels


def _label(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _independent_verify(spki: bytes, mechanism: SignMechanism, data: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` is valid; uses only ``cryptography``."""
    public = serialization.load_der_public_key(spki)
    if isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        public.verify(signature, data)
        return
    if mechanism.scheme is SignScheme.RSA_PKCS1V15_RAW:
        assert isinstance(public, rsa.RSAPublicKey)
        if public.recover_data_from_signature(signature, padding.PKCS1v15(), None) != data:
            raise InvalidSignature("recovered data differs")
        return
    assert mechanism.hash is not None
    algorithm = _HASH[mechanism.hash]
    chosen = Prehashed(algorithm) if mechanism.prehashed else algorithm
    if isinstance(public, rsa.RSAPublicKey):
        pad = (padding.PKCS1v15() if mechanism.scheme is SignScheme.RSA_PKCS1V15
               else padding.PSS(padding.MGF1(algorithm), algorithm.digest_size))
        public.verify(signature, data, pad, chosen)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, data, ec.ECDSA(chosen))
    else:
        raise AssertionError(f"unexpected key {public}")


def test_capabilities_are_declared(partition: Partition) -> None:
    caps = partition.capabilities()
    assert caps.backend in ("soft", "pkcs11")
    assert caps.can_generate(KeySpec(KeyType.RSA, 2048))
    assert caps.can_generate(KeySpec(KeyType.EC, curve_oid=P256))
    assert caps.can_sign(KeyType.RSA, SignMechanism(SignScheme.RSA_PSS, HashAlg.SHA256))
    assert caps.can_sign(KeyType.EC, SignMechanism(SignScheme.ECDSA, HashAlg.SHA256))
    assert not caps.can_generate(KeySpec(KeyType.RSA, 12345))


def test_generate_get_list_delete(partition: Partition) -> None:
    label = _label("lifecycle")
    info = partition.generate(label, KeySpec(KeyType.EC, curve_oid=P256), SIGNER)
    assert info.label == label and info.key_type is KeyType.EC and info.curve_oid == P256
    assert info.attributes.sign and info.attributes.always_sensitive and info.attributes.never_extractable
    public = serialization.load_der_public_key(info.public_key or b"")
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert partition.get(label).public_key == info.public_key
    assert label in partition.list_labels()
    partition.delete(label)
    assert label not in partition.list_labels()
    with pytest.raises(KeyNotFound):
        partition.get(label)
    with pytest.raises(KeyNotFound):
        partition.delete(label)


def test_duplicate_label_is_refused(partition: Partition) -> None:
    label = _label("dup")
    partition.generate(label, KeySpec(KeyType.AES, 256), KeyAttributes(decrypt=True, destroyable=True))
    with pytest.raises(KeyExists):
        partition.generate(label, KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True, destroyable=True))


def test_secret_key_has_no_public_part(partition: Partition) -> None:
    info = partition.generate(_label("aes"), KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True))
    assert info.public_key is None and info.key_type is KeyType.AES and info.size == 128


def test_history_bits_follow_sensitive_and_extractable(partition: Partition) -> None:
    attributes = KeyAttributes(sign=True, sensitive=False, extractable=True, destroyable=True)
    info = partition.generate(_label("exportable"), KeySpec(KeyType.EC, curve_oid=P256), attributes)
    assert not info.attributes.always_sensitive and not info.attributes.never_extractable
    assert info.attributes.extractable and not info.attributes.sensitive


def test_non_destroyable_key_survives_delete(partition: Partition) -> None:
    label = _label("keep")
    partition.generate(label, KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True, destroyable=False))
    with pytest.raises(OperationNotPermitted):
        partition.delete(label)
    assert partition.get(label).label == label


def test_sign_requires_the_sign_attribute(partition: Partition) -> None:
    label = _label("nosign")
    partition.generate(label, KeySpec(KeyType.EC, curve_oid=P256), KeyAttributes(decrypt=True, destroyable=True))
    with pytest.raises(OperationNotPermitted):
        partition.sign(label, SignMechanism(SignScheme.ECDSA, HashAlg.SHA256), b"data")


def test_missing_key(partition: Partition) -> None:
    with pytest.raises(KeyNotFound):
        partition.sign("no-such-key", SignMechanism(SignScheme.ECDSA, HashAlg.SHA256), b"x")


def _signed_data(mechanism: SignMechanism, message: bytes) -> bytes:
    """What ``mechanism`` signs for ``message``: the message, or its digest for prehashed and raw schemes."""
    if mechanism.scheme is SignScheme.RSA_PKCS1V15_RAW:
        return hashlib.sha256(message).digest()
    if mechanism.prehashed:
        assert mechanism.hash is not None
        return hashlib.new(mechanism.hash.value, message).digest()
    return message


def test_declared_cases_are_all_under_test(partition: Partition) -> None:
    """A mechanism a backend declares beyond the contract's cases would go untested: add it there."""
    capabilities = partition.capabilities()
    # BIP-340 is signed through Partition.sign_bip340 and checked against its published vectors
    # (tests/domain/derivation/test_bip340.py)
    declared = {(t, m) for t, m in capabilities.sign if t in SIGN_KEY_TYPES and m.scheme is not SignScheme.BIP340}
    assert declared - set(SIGN_CASES) == set(), sorted(mechanism_id(*c) for c in declared - set(SIGN_CASES))


@pytest.mark.parametrize(("key_type", "mechanism"), params(SIGN_CASES))
def test_every_sign_mechanism_verifies_independently(partition: Partition, signing_keys: dict[KeyType, str],
                                                     key_type: KeyType, mechanism: SignMechanism) -> None:
    if not partition.capabilities().can_sign(key_type, mechanism):
        unsupported(partition, f"signing with {mechanism_id(key_type, mechanism)}")
    label = signing_keys[key_type]
    data = _signed_data(mechanism, b"hsmgate contract payload")
    signature = partition.sign(label, mechanism, data)
    spki = partition.get(label).public_key or b""
    try:
        _independent_verify(spki, mechanism, data, signature)
    except InvalidSignature:
        pytest.fail(f"{key_type} {mechanism} produced a signature cryptography rejects")
    assert partition.verify(label, mechanism, data, signature)
    tampered = bytes([data[0] ^ 1]) + data[1:]  # first byte: ECDSA truncates long digests
    assert not partition.verify(label, mechanism, tampered, signature), \
        f"{key_type} {mechanism} accepts tampered data"


BATCH_CASES = [(KeyType.ED, SignMechanism(SignScheme.EDDSA)),
               (KeyType.EC, SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)),
               (KeyType.RSA, SignMechanism(SignScheme.RSA_PSS, HashAlg.SHA256))]


@pytest.mark.parametrize(("key_type", "mechanism"), params(BATCH_CASES))
def test_sign_many_signs_every_item(partition: Partition, signing_keys: dict[KeyType, str], key_type: KeyType,
                                    mechanism: SignMechanism) -> None:
    """Each signature of a batch verifies, with ``cryptography``, for its own item and no other."""
    if not partition.capabilities().can_sign(key_type, mechanism):
        unsupported(partition, f"signing with {mechanism_id(key_type, mechanism)}")
    messages = [f"batch item {i}".encode() for i in range(5)]
    label = signing_keys[key_type]
    spki = partition.get(label).public_key or b""
    results = partition.sign_many(label, mechanism, messages)
    assert len(results) == len(messages)
    for index, (message, signature) in enumerate(zip(messages, results, strict=True)):
        assert isinstance(signature, bytes), signature
        _independent_verify(spki, mechanism, message, signature)
        other = messages[(index + 1) % len(messages)]
        with pytest.raises(InvalidSignature):
            _independent_verify(spki, mechanism, other, signature)


def test_sign_many_keeps_an_item_error_to_that_item(partition: Partition,
                                                    signing_keys: dict[KeyType, str]) -> None:
    """A prehashed mechanism given one payload that is not a digest: only that item fails."""
    mechanism = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256, prehashed=True)
    if not partition.capabilities().can_sign(KeyType.EC, mechanism):
        unsupported(partition, f"signing with {mechanism_id(KeyType.EC, mechanism)}")
    digests = [hashlib.sha256(f"batch item {i}".encode()).digest() for i in range(5)]
    digests[2] = b"not a digest"
    results = partition.sign_many(signing_keys[KeyType.EC], mechanism, digests)
    spki = partition.get(signing_keys[KeyType.EC]).public_key or b""
    assert len(results) == len(digests)
    assert isinstance(results[2], HsmError), results[2]
    for index in (0, 1, 3, 4):
        signature = results[index]
        assert isinstance(signature, bytes), signature
        _independent_verify(spki, mechanism, digests[index], signature)


def test_sign_many_refuses_a_missing_key_or_one_without_sign(partition: Partition) -> None:
    """Raised once, or (the default implementation) one error per item — never a signature."""
    mechanism = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)
    label = _label("nosign-many")
    partition.generate(label, KeySpec(KeyType.EC, curve_oid=P256), KeyAttributes(decrypt=True, destroyable=True))
    for key, error in (("no-such-key", KeyNotFound), (label, OperationNotPermitted)):
        try:
            results = partition.sign_many(key, mechanism, [b"x", b"y"])
        except error:
            continue
        assert len(results) == 2 and all(isinstance(r, error) for r in results), results


def test_deterministic_ecdsa_is_deterministic_or_refused(partition: Partition, signing_keys: dict[KeyType, str]) -> None:
    mechanism = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256, deterministic=True)
    label = signing_keys[KeyType.EC]
    if not partition.capabilities().can_sign(KeyType.EC, mechanism):
        with pytest.raises(UnsupportedByBackend):
            partition.sign(label, mechanism, b"m")
        return
    assert partition.sign(label, mechanism, b"m") == partition.sign(label, mechanism, b"m")


def test_generate_random(partition: Partition) -> None:
    first, second = partition.generate_random(32), partition.generate_random(32)
    assert len(first) == 32 and first != second
