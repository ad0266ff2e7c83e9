"""The built-in software token: keys made with ``cryptography``, sealed at rest.

Every private or secret key is stored as one database record whose material is encrypted with
AES-256-GCM under the master key: a fresh 96-bit nonce per record, and associated data that binds
the record to its partition and label, so a sealed blob copied to another label or partition fails
to open. Decrypted keys are cached in memory per process.

This token is for a zero-install start and for development; it gives no hardware protection.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

from Crypto.PublicKey import RSA as PyCryptodomeRSA
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsmgate.hsm import softcrypto
from hsmgate.hsm.base import (
    BackendUnavailable,
    Capabilities,
    KeyAttributes,
    KeyExists,
    KeyInfo,
    KeyNotFound,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    Partition,
    SignMechanism,
    UnsupportedByBackend,
)
from hsmgate.store.models import SoftKeyRecord
from hsmgate.store.soft_keys import DuplicateLabel, SoftKeyRepository

#: Sizes in bits of generated secret keys.
SECRET_KEY_SIZES: dict[KeyType, frozenset[int]] = {
    KeyType.AES: frozenset({128, 192, 256}),
    KeyType.CAMELLIA: frozenset({128, 192, 256}),
    KeyType.CHACHA20: frozenset({256}),
    KeyType.TDEA: frozenset({192}),
    KeyType.HMAC_SHA1: frozenset({160}),
    KeyType.HMAC_SHA224: frozenset({224}),
    KeyType.HMAC_SHA256: frozenset({256}),
    KeyType.HMAC_SHA384: frozenset({384}),
    KeyType.HMAC_SHA512: frozenset({512}),
}

_SEAL_CONTEXT = b"hsmgate/soft-token/v1"


class Sealer:
    """AES-256-GCM sealing of key material under the master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes (AES-256)")
        self._aead = AESGCM(master_key)

    @staticmethod
    def _aad(partition: str, label: str) -> bytes:
        return b"\x00".join((_SEAL_CONTEXT, partition.encode(), label.encode()))

    def seal(self, partition: str, label: str, material: bytes) -> tuple[bytes, bytes]:
        """Returns (nonce, ciphertext‖tag)."""
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, material, self._aad(partition, label))

    def open(self, partition: str, label: str, nonce: bytes, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, sealed, self._aad(partition, label))
        except InvalidTag:
            raise BackendUnavailable(
                f"key '{label}' cannot be unsealed: wrong master key or tampered record"
            ) from None


@dataclass(slots=True)
class _LoadedKey:
    info: KeyInfo
    private: softcrypto.PrivateKey | None = None
    secret: bytes | None = None
    raw_rsa: object | None = None  # pycryptodome key for the raw RSA operation, built lazily


class SoftPartition(Partition):
    """A partition of the software token, persisted through :class:`SoftKeyRepository`."""

    def __init__(self, name: str, *, repository: SoftKeyRepository, master_key: bytes) -> None:
        self.name = name
        self._repo = repository
        self._sealer = Sealer(master_key)
        self._cache: dict[str, _LoadedKey] = {}
        self._lock = threading.Lock()
        self._capabilities = _soft_capabilities()

    def capabilities(self) -> Capabilities:
        return self._capabilities

    def generate(self, label: str, spec: KeySpec, attributes: KeyAttributes,
                 key_id: bytes | None = None) -> KeyInfo:
        if not self._capabilities.can_generate(spec):
            raise UnsupportedByBackend(f"the soft token cannot generate {spec.key_type} with "
                                       f"{'curve ' + str(spec.curve_oid) if spec.curve_oid else f'size {spec.size}'}")
        attributes = attributes.with_history(always_sensitive=attributes.sensitive,
                                             never_extractable=not attributes.extractable)
        public_der: bytes | None = None
        size = spec.size
        if spec.key_type.is_asymmetric:
            private = softcrypto.generate_private_key(spec)
            material = private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            public_der = softcrypto.spki_der(private.public_key())
            if spec.key_type is KeyType.EC:
                size = softcrypto.EC_CURVES[spec.curve_oid or ""][1]
            elif spec.key_type is KeyType.ED:
                size = softcrypto.ED_CURVES[spec.curve_oid or ""]
        else:
            size = spec.size or max(SECRET_KEY_SIZES[spec.key_type])
            material = secrets.token_bytes(size // 8)
        nonce, sealed = self._sealer.seal(self.name, label, material)
        created = datetime.now(UTC).replace(microsecond=0)
        record = SoftKeyRecord(
            label=label, key_id=key_id, key_type=spec.key_type.value, key_size=size,
            curve_oid=spec.curve_oid, attributes=asdict(attributes), public_key=public_der,
            sealed_material=sealed, nonce=nonce, created_at=created,
        )
        try:
            self._repo.add(record)
        except DuplicateLabel:
            raise KeyExists(f"a key with label '{label}' already exists") from None
        return self._info(record)

    def list_labels(self) -> list[str]:
        return self._repo.labels()

    def get(self, label: str) -> KeyInfo:
        return self._load(label).info

    def delete(self, label: str) -> None:
        info = self.get(label)
        if not info.attributes.destroyable:
            raise OperationNotPermitted(f"key '{label}' is not destroyable")
        with self._lock:
            self._cache.pop(label, None)
        if not self._repo.remove(label):
            raise KeyNotFound(f"key '{label}' not found")

    def sign(self, label: str, mechanism: SignMechanism, data: bytes, *, context: bytes | None = None) -> bytes:
        key = self._load(label)
        if not key.info.attributes.sign:
            raise OperationNotPermitted(f"key '{label}' does not have the sign attribute")
        if key.private is None or not self._capabilities.can_sign(key.info.key_type, mechanism):
            raise UnsupportedByBackend(f"key '{label}' ({key.info.key_type}) cannot sign with {mechanism.scheme}")
        raw = self._raw_rsa(key) if isinstance(key.private, rsa.RSAPrivateKey) else None
        return softcrypto.sign(key.private, mechanism, data, raw)

    def verify(self, label: str, mechanism: SignMechanism, data: bytes, signature: bytes,
               *, context: bytes | None = None) -> bool:
        key = self._load(label)
        if key.info.public_key is None or not self._capabilities.can_sign(key.info.key_type, mechanism):
            raise UnsupportedByBackend(f"key '{label}' ({key.info.key_type}) cannot verify {mechanism.scheme}")
        return softcrypto.verify(softcrypto.load_spki(key.info.public_key), mechanism, data, signature)

    def generate_random(self, length: int) -> bytes:
        return secrets.token_bytes(length)

    def close(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- internals -------------------------------------------------------------------------

    def _info(self, record: SoftKeyRecord) -> KeyInfo:
        names = {f.name for f in fields(KeyAttributes)}
        attributes = KeyAttributes(**{k: v for k, v in record.attributes.items() if k in names})
        created = record.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return KeyInfo(
            label=record.label, key_type=KeyType(record.key_type), attributes=attributes,
            size=record.key_size, curve_oid=record.curve_oid, key_id=record.key_id,
            public_key=record.public_key, created_at=created,
        )

    def _load(self, label: str) -> _LoadedKey:
        cached = self._cache.get(label)
        if cached is not None:
            return cached
        record = self._repo.get(label)
        if record is None:
            raise KeyNotFound(f"key '{label}' not found")
        material = self._sealer.open(self.name, label, record.nonce, record.sealed_material)
        info = self._info(record)
        if info.key_type.is_asymmetric:
            private = serialization.load_der_private_key(material, password=None)
            loaded = _LoadedKey(info, private=private)  # type: ignore[arg-type]
        else:
            loaded = _LoadedKey(info, secret=material)
        with self._lock:
            self._cache[label] = loaded
        return loaded

    def _raw_rsa(self, key: _LoadedKey) -> object:
        if key.raw_rsa is None:
            assert isinstance(key.private, rsa.RSAPrivateKey)
            numbers = key.private.private_numbers()
            key.raw_rsa = PyCryptodomeRSA.construct(
                (numbers.public_numbers.n, numbers.public_numbers.e, numbers.d, numbers.p, numbers.q)
            )
        return key.raw_rsa


def _soft_capabilities() -> Capabilities:
    key_specs: dict[KeyType, frozenset[int | str]] = {
        KeyType.RSA: frozenset(softcrypto.RSA_SIZES),
        KeyType.DSA: frozenset(softcrypto.DSA_SIZES),
        KeyType.EC: frozenset(softcrypto.EC_CURVES),
        KeyType.ED: frozenset(softcrypto.ED_CURVES),
        **{t: frozenset(s) for t, s in SECRET_KEY_SIZES.items()},
    }
    sign = frozenset(
        (key_type, mechanism)
        for key_type in (KeyType.RSA, KeyType.DSA, KeyType.EC, KeyType.ED)
        for mechanism in softcrypto.sign_mechanisms(key_type)
    )
    return Capabilities(backend="soft", key_specs=key_specs, sign=sign)
