"""The backend contract for the optional operations: encrypt/decrypt, wrap/unwrap, HMAC.

Every backend runs every cipher and wrap case hsmgate implements (``tests/hsm/contract/backends.py``);
a case the backend does not declare in ``capabilities()`` is skipped with the reason, so the report
shows each backend's gaps, and declaring a mechanism is what puts it under test.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from hsmgate.hsm.base import (
    CipherMechanism,
    CipherMode,
    DecryptFailed,
    KeyAttributes,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    Partition,
    UnsupportedByBackend,
    WrapMechanism,
    WrapMode,
)
from tests.hsm.contract.backends import (
    BACKENDS,
    CIPHER_CASES,
    CIPHER_KEY_TYPES,
    WRAP_CASES,
    WRAP_KEY_TYPES,
    mechanism_id,
    open_backend,
    params,
    unsupported,
)

ALL = KeyAttributes(encrypt=True, decrypt=True, wrap=True, unwrap=True, sign=True, verify=True,
                    extractable=True, sensitive=False, destroyable=True)
SPECS = {KeyType.RSA: KeySpec(KeyType.RSA, 2048), KeyType.AES: KeySpec(KeyType.AES, 256),
         KeyType.CAMELLIA: KeySpec(KeyType.CAMELLIA, 256), KeyType.TDEA: KeySpec(KeyType.TDEA, 192),
         KeyType.CHACHA20: KeySpec(KeyType.CHACHA20, 256), KeyType.HMAC_SHA256: KeySpec(KeyType.HMAC_SHA256, 256)}
_NO_PADDING = {CipherMode.AES_CBC, CipherMode.AES_ECB, CipherMode.CAMELLIA_CBC, CipherMode.CAMELLIA_ECB,
               CipherMode.TDEA_CBC, CipherMode.TDEA_ECB}


@pytest.fixture(scope="module", params=BACKENDS)
def partition(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partition]:
    with open_backend(request.param, tmp_path_factory.mktemp(f"ops-{request.param}")) as backend:
        yield backend


@pytest.fixture(scope="module")
def keys(partition: Partition) -> dict[KeyType, str]:
    out = {}
    for key_type, spec in SPECS.items():
        if partition.capabilities().can_generate(spec):
            out[key_type] = f"ops-{key_type}-{secrets.token_hex(3)}"
            partition.generate(out[key_type], spec, ALL)
    return out


def test_declared_cases_are_all_under_test(partition: Partition) -> None:
    """A cipher or wrap mechanism a backend declares beyond the contract's cases would go untested."""
    capabilities = partition.capabilities()
    ciphers = {case for case in capabilities.cipher if case[0] in CIPHER_KEY_TYPES} - set(CIPHER_CASES)
    wraps = {case for case in capabilities.wrap if case[0] in WRAP_KEY_TYPES} - set(WRAP_CASES)
    assert ciphers == set(), sorted(mechanism_id(*c) for c in ciphers)
    assert wraps == set(), sorted(mechanism_id(*c) for c in wraps)


def _key(partition: Partition, keys: dict[KeyType, str], key_type: KeyType) -> str:
    if key_type not in keys:
        unsupported(partition, f"generating {SPECS[key_type]}")
    return keys[key_type]


@pytest.mark.parametrize(("key_type", "mechanism"), params(CIPHER_CASES))
def test_cipher_round_trip(partition: Partition, keys: dict[KeyType, str], key_type: KeyType,
                           mechanism: CipherMechanism) -> None:
    if not partition.capabilities().can_encrypt(key_type, mechanism):
        unsupported(partition, f"encryption with {mechanism_id(key_type, mechanism)}")
    label = _key(partition, keys, key_type)
    data = secrets.token_bytes(32)
    aad = b"aad" if mechanism.mode in (CipherMode.AES_GCM, CipherMode.CHACHA20_POLY1305) else None
    result = partition.encrypt(label, mechanism, data, aad=aad)
    assert data not in result.ciphertext
    plain = partition.decrypt(label, mechanism, result.ciphertext, iv=result.iv, aad=aad, tag=result.tag)
    assert plain.endswith(data), mechanism  # raw RSA returns the whole modulus-sized block
    if result.tag:
        with pytest.raises(DecryptFailed):
            partition.decrypt(label, mechanism, result.ciphertext, iv=result.iv, aad=aad,
                              tag=bytes([result.tag[0] ^ 1]) + result.tag[1:])
    if mechanism.mode in _NO_PADDING and key_type is not KeyType.RSA:
        with pytest.raises(Exception, match="multiple"):
            partition.encrypt(label, mechanism, data[:13])


@pytest.mark.parametrize(("key_type", "mechanism"), params(WRAP_CASES))
def test_wrap_round_trip(partition: Partition, keys: dict[KeyType, str], key_type: KeyType,
                         mechanism: WrapMechanism) -> None:
    if not partition.capabilities().can_wrap(key_type, mechanism):
        unsupported(partition, f"wrapping with {mechanism_id(key_type, mechanism)}")
    wrapping, target = _key(partition, keys, key_type), _key(partition, keys, KeyType.AES)
    blob = partition.wrap(wrapping, mechanism, target)
    label = f"ops-unwrapped-{secrets.token_hex(3)}"
    info = partition.unwrap(wrapping, mechanism, blob, label=label, spec=KeySpec(KeyType.AES), attributes=ALL)
    assert info.key_type is KeyType.AES and info.size == 256
    assert not info.attributes.always_sensitive and not info.attributes.never_extractable
    ecb = CipherMechanism(CipherMode.AES_ECB)
    if partition.capabilities().can_encrypt(KeyType.AES, ecb):  # the same key: the same ciphertext
        block = secrets.token_bytes(16)
        assert (partition.encrypt(label, ecb, block).ciphertext
                == partition.encrypt(target, ecb, block).ciphertext)
    with pytest.raises(DecryptFailed):
        partition.unwrap(wrapping, mechanism, blob[:-1] + bytes([blob[-1] ^ 1]),
                         label=f"{label}-bad", spec=KeySpec(KeyType.AES), attributes=ALL)


def test_non_extractable_keys_are_never_wrapped(partition: Partition, keys: dict[KeyType, str]) -> None:
    mechanism = WrapMechanism(WrapMode.AES_KWP)
    if KeyType.AES not in keys or not partition.capabilities().can_wrap(KeyType.AES, mechanism):
        unsupported(partition, "AES key wrap with padding (RFC 5649)")
    locked = f"ops-locked-{secrets.token_hex(3)}"
    partition.generate(locked, SPECS[KeyType.AES], KeyAttributes(decrypt=True, extractable=False))
    with pytest.raises(OperationNotPermitted):
        partition.wrap(keys[KeyType.AES], mechanism, locked)


def test_declared_hmac(partition: Partition, keys: dict[KeyType, str]) -> None:
    if KeyType.HMAC_SHA256 not in partition.capabilities().hmac or KeyType.HMAC_SHA256 not in keys:
        unsupported(partition, "HMAC-SHA256")
    label = keys[KeyType.HMAC_SHA256]
    mac = partition.hmac(label, b"data")
    assert len(mac) == 32
    assert partition.hmac_verify(label, b"data", mac)
    assert not partition.hmac_verify(label, b"datA", mac)


def test_undeclared_operations_are_refused(partition: Partition, keys: dict[KeyType, str]) -> None:
    capabilities = partition.capabilities()
    label = keys.get(KeyType.AES)
    if label is None:
        unsupported(partition, f"generating {SPECS[KeyType.AES]}")
    undeclared = [m for m in (CipherMechanism(CipherMode.AES_GCM, tag_bits=128), CipherMechanism(CipherMode.AES_CTR))
                  if not capabilities.can_encrypt(KeyType.AES, m)]
    for mechanism in undeclared:
        with pytest.raises(UnsupportedByBackend):
            partition.encrypt(label, mechanism, b"x" * 16)
    if not capabilities.can_wrap(KeyType.AES, WrapMechanism(WrapMode.AES_KW)):
        with pytest.raises(UnsupportedByBackend):
            partition.wrap(label, WrapMechanism(WrapMode.AES_KW), label)
