"""The built-in software token: keys made with ``cryptography``, sealed at rest.

Every private or secret key is stored as one database record whose material is encrypted with
AES-256-GCM under the master key: a fresh 96-bit nonce per record, and associated data that binds
the record to its partition and label, so a sealed blob copied to another label or partition fails
to open. Decrypted keys are cached in memory per process; an entry is trusted without a query while
the database's key generation token is the one it was last checked at (``store/key_generation.py``),
and checked again by its record's nonce (one indexed lookup) when the token moved.

This token is for a zero-install start and for development; it gives no hardware protection.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime

from Crypto.PublicKey import RSA as PyCryptodomeRSA
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsmgate.hsm import (
    file_container,
    softbls,
    softcipher,
    softcrypto,
    softderive,
    softlms,
    softpq,
    softschnorr,
)
from hsmgate.hsm.base import (
    BackendUnavailable,
    Capabilities,
    CipherMechanism,
    CipherMode,
    DecryptFailed,
    EncryptResult,
    ExportedKey,
    HsmError,
    InvalidInput,
    KeyAttributes,
    KeyExhausted,
    KeyExists,
    KeyInfo,
    KeyNotFound,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    Partition,
    SchnorrOptions,
    SignMechanism,
    SignScheme,
    TokenIdentity,
    UnsupportedByBackend,
    WrapMechanism,
    WrapMode,
    sign_each,
)
from hsmgate.hsm.derivation import DerivationPath, DerivationScheme, NodeInfo, split_key_name
from hsmgate.hsm.sealed_store import SealedKey, SealedKeyRecord, SealedKeyStore

#: Temporary children (``<master>/<path>`` with no record) kept unsealed per process, most recent last.
MAX_DERIVED_CACHE = 4096

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
_FINGERPRINT_CONTEXT = b"hsmgate/master-key-fingerprint/v1"


def master_key_fingerprint(master_key: bytes) -> str:
    """Hex HMAC-SHA-256 of a fixed context under the master key: names the key without revealing it."""
    return hmac.new(master_key, _FINGERPRINT_CONTEXT, hashlib.sha256).hexdigest()


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
    nonce: bytes  # sealing nonce of the record this key was unsealed from: identifies that version
    token: object | None = None  # key generation token at which the record was last seen unchanged
    private: softcrypto.PrivateKey | None = None
    secret: bytes | None = None
    raw_rsa: object | None = None  # pycryptodome key for the raw RSA operation, built lazily
    pq: softpq.PqPrivateKey | None = None  # ML-DSA / SLH-DSA / ML-KEM private key
    hd: softderive.Master | None = None  # a derivation master's unsealed root node
    bls: int | None = None  # a BLS12-381 secret scalar
    lms: softlms.LmsKey | None = None  # an LMS tree; its one-time key index lives in the store
    #: the label whose record this entry comes from: itself, or the master of a temporary child
    source: str = ""


class SoftPartition(Partition):
    """A partition of the software token, persisted through a :class:`SealedKeyStore` (in the server:
    ``store.soft_keys.SoftKeyRepository``)."""

    def __init__(self, name: str, *, repository: SealedKeyStore, master_key: bytes,
                 key_cache_size: int = 50_000) -> None:
        self.name = name
        self._repo = repository
        self._sealer = Sealer(master_key)
        self._identity = TokenIdentity(backend="soft", key_fingerprint=master_key_fingerprint(master_key))
        #: unsealed keys, at most ``key_cache_size`` (HSMGATE_KEY_CACHE_SIZE): the oldest unsealed goes first
        self._cache: dict[str, _LoadedKey] = {}
        self._cache_size = key_cache_size
        self._lock = threading.Lock()
        self._capabilities = _soft_capabilities()

    def capabilities(self) -> Capabilities:
        return self._capabilities

    def identity(self) -> TokenIdentity:
        return self._identity

    def generate(self, label: str, spec: KeySpec, attributes: KeyAttributes,
                 key_id: bytes | None = None) -> KeyInfo:
        if not self._capabilities.can_generate(spec):
            raise UnsupportedByBackend(f"the soft token cannot generate {spec.key_type} with "
                                       f"{'curve ' + str(spec.curve_oid) if spec.curve_oid else f'size {spec.size}'}")
        attributes = attributes.with_history(always_sensitive=attributes.sensitive,
                                             never_extractable=not attributes.extractable)
        if spec.derivation is not None:
            return self._store_master(label, spec.derivation, spec.curve_oid or "", secrets.token_bytes(32),
                                      attributes, key_id)
        public_der: bytes | None = None
        size = spec.size
        if spec.key_type.is_post_quantum:
            material, public_der = softpq.generate(spec.key_type)  # format recorded in the material
            size = None
        elif spec.key_type is KeyType.BLS:
            material, public_der = softbls.generate()
            size = None
        elif spec.key_type is KeyType.LMS:
            size = spec.size or softlms.DEFAULT_HEIGHT
            material, public_der, _ = softlms.generate(size)
            return self._add(label, KeyType.LMS, attributes, material, size, None, public_der, key_id=key_id,
                             next_index=0)
        elif spec.key_type.is_asymmetric:
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
        record = SealedKey(
            label=label, key_id=key_id, key_type=spec.key_type.value, key_size=size,
            curve_oid=spec.curve_oid, attributes=asdict(attributes), public_key=public_der,
            sealed_material=sealed, nonce=nonce, created_at=created,
        )
        try:
            self._repo.add(record)
        except self._repo.DuplicateLabel:
            raise KeyExists(f"a key with label '{label}' already exists") from None
        return self._info(record)

    # -- derivation masters and children (softderive) -----------------------------------------

    def import_seed(self, label: str, *, seed: bytes, curve_oid: str, scheme: DerivationScheme,
                    attributes: KeyAttributes) -> KeyInfo:
        attributes = attributes.with_history(always_sensitive=False, never_extractable=False)
        return self._store_master(label, scheme, curve_oid, seed, attributes, None)

    def _store_master(self, label: str, scheme: DerivationScheme, curve_oid: str, seed: bytes,
                      attributes: KeyAttributes, key_id: bytes | None) -> KeyInfo:
        material = softderive.master_material(scheme, curve_oid, seed)
        root = softderive.node(softderive.load_master(material))
        key_type = KeyType.ED if curve_oid == softderive.ED25519_OID else KeyType.EC
        return self._add(label, key_type, attributes, material, _curve_size(key_type, curve_oid), curve_oid,
                         softcrypto.spki_der(root.private.public_key()), key_id=key_id, derivation=root.info)

    def derive_key(self, master_label: str, path: DerivationPath, *, attributes: KeyAttributes) -> KeyInfo:
        master = self._load(master_label)
        if master.hd is None:
            raise UnsupportedByBackend(f"key '{master_label}' is not a derivation master")
        child = softderive.node(master.hd, path)
        key_type = master.info.key_type
        material = child.private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())
        attributes = attributes.with_history(always_sensitive=master.info.attributes.always_sensitive
                                             and attributes.sensitive,
                                             never_extractable=master.info.attributes.never_extractable
                                             and not attributes.extractable)
        return self._add(f"{master_label}/{path}", key_type, attributes, material, master.info.size,
                         master.info.curve_oid, softcrypto.spki_der(child.private.public_key()),
                         derivation=child.info)

    def _add(self, label: str, key_type: KeyType, attributes: KeyAttributes, material: bytes, size: int | None,
             curve_oid: str | None, public_der: bytes | None, *, key_id: bytes | None = None,
             derivation: NodeInfo | None = None, next_index: int | None = None) -> KeyInfo:
        nonce, sealed = self._sealer.seal(self.name, label, material)
        record = SealedKey(
            label=label, key_id=key_id, key_type=key_type.value, key_size=size, curve_oid=curve_oid,
            attributes=asdict(attributes), public_key=public_der, sealed_material=sealed, nonce=nonce,
            created_at=datetime.now(UTC).replace(microsecond=0),
            derivation=derivation.to_record() if derivation is not None else None, next_index=next_index,
        )
        try:
            self._repo.add(record)
        except self._repo.DuplicateLabel:
            raise KeyExists(f"a key with label '{label}' already exists") from None
        return self._info(record)

    def _derived(self, label: str) -> _LoadedKey:
        """The temporary child ``<master>/<path>`` (no record of that name): derived from the
        master, cached like a key and dropped with it."""
        master_label, path_text = split_key_name(label)
        if path_text is None:
            raise KeyNotFound(f"key '{label}' not found")
        try:
            path = DerivationPath.parse(path_text)
        except ValueError as exc:
            raise InvalidInput(f"key name '{label}': {exc}") from None
        master = self._load(master_label)
        if master.hd is None:
            raise UnsupportedByBackend(f"key '{master_label}' is not a derivation master")
        child = softderive.node(master.hd, path)
        info = replace(master.info, label=label, public_key=softcrypto.spki_der(child.private.public_key()),
                       key_id=None, derivation=child.info)
        loaded = _LoadedKey(info, master.nonce, token=master.token, private=child.private, source=master_label)
        with self._lock:
            if len(self._cache) >= MAX_DERIVED_CACHE:  # temporary children crowd the cache: drop them
                for stale in [k for k, v in self._cache.items() if v.source != k]:
                    del self._cache[stale]
            self._remember(label, loaded)
        return loaded

    def list_labels(self) -> list[str]:
        return self._repo.labels()

    def get(self, label: str) -> KeyInfo:
        """The key's description from its record, without unsealing it: only the operations that
        use the key unseal (a key sealed under another master key is still described and deleted)."""
        cached = self._cached(label)
        if cached is not None and cached.info.key_type is not KeyType.LMS:
            return cached.info
        record = self._repo.get(label)
        if record is None:
            if "/" in label:
                return self._derived(label).info
            raise KeyNotFound(f"key '{label}' not found")
        return self._info(record)

    def delete(self, label: str) -> None:
        info = self.get(label)
        if not info.attributes.destroyable:
            raise OperationNotPermitted(f"key '{label}' is not destroyable")
        with self._lock:
            self._cache.pop(label, None)
        if not self._repo.remove(label):
            raise KeyNotFound(f"key '{label}' not found")

    def sign(self, label: str, mechanism: SignMechanism, data: bytes, *, context: bytes | None = None) -> bytes:
        return self._signer(label, mechanism, context)(data)

    def sign_many(self, label: str, mechanism: SignMechanism, items: Sequence[bytes], *,
                  context: bytes | None = None) -> list[bytes | HsmError]:
        """One key look-up and one set of checks for the whole batch (``Partition.sign_many``)."""
        return sign_each(items, self._signer(label, mechanism, context))

    def _signer(self, label: str, mechanism: SignMechanism, context: bytes | None) -> Callable[[bytes], bytes]:
        """The key's signing function for ``mechanism``, after the checks every signature needs."""
        key = self._load(label)
        if not key.info.attributes.sign:
            raise OperationNotPermitted(f"key '{label}' does not have the sign attribute")
        if key.pq is not None and self._capabilities.can_sign(key.info.key_type, mechanism):
            pq = key.pq
            return lambda data: softpq.sign(pq, mechanism, data, context)
        if key.bls is not None and mechanism.scheme is SignScheme.BLS and not context:
            secret = key.bls
            return lambda data: softbls.sign(secret, data)
        if key.lms is not None and mechanism.scheme is SignScheme.HSS_LMS and not context:
            return self._lms_signer(label, key.lms)
        if context and key.pq is None:
            raise InvalidInput("a context string is only defined for ML-DSA and SLH-DSA")
        if key.private is None or not self._capabilities.can_sign(key.info.key_type, mechanism):
            raise UnsupportedByBackend(f"key '{label}' ({key.info.key_type}) cannot sign with {mechanism.scheme}")
        private = key.private
        raw = self._raw_rsa(key) if mechanism.scheme is SignScheme.RSA_PKCS1V15_RAW else None
        return softcrypto.signer(private, mechanism, raw)

    def _lms_signer(self, label: str, key: softlms.LmsKey) -> Callable[[bytes], bytes]:
        """Each signature first reserves its one-time key index in the store, committed, and only
        then computes the signature with it (``softlms``): an index is never used twice, whatever
        process signs and whenever one dies."""
        def sign(data: bytes) -> bytes:
            index = self._repo.reserve_index(label, key.capacity)
            if index is None:
                raise KeyExhausted(f"LMS key '{label}' is exhausted: all {key.capacity} one-time signatures are "
                                   "used; it can never sign again")
            return softlms.sign(key, index, data)

        return sign

    def sign_bip340(self, label: str, messages: Sequence[bytes], options: SchnorrOptions) -> list[bytes | HsmError]:
        key = self._load(label)
        if not key.info.attributes.sign:
            raise OperationNotPermitted(f"key '{label}' does not have the sign attribute")
        if not isinstance(key.private, ec.EllipticCurvePrivateKey):
            raise UnsupportedByBackend(f"key '{label}' ({key.info.key_type}) cannot make BIP-340 signatures")
        signer = softschnorr.signing_key(key.private, options)
        return sign_each(messages, lambda message: softschnorr.sign(signer, message, options.aux_rand))

    def verify(self, label: str, mechanism: SignMechanism, data: bytes, signature: bytes,
               *, context: bytes | None = None) -> bool:
        key = self._load(label)
        if mechanism.scheme is SignScheme.BIP340 and key.info.public_key is not None:
            public = softcrypto.load_spki(key.info.public_key)
            if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256K1):
                raise UnsupportedByBackend(f"key '{label}' is no secp256k1 key: no BIP-340 signatures")
            return softschnorr.verify(public, data, signature)
        if key.info.public_key is None or not self._capabilities.can_sign(key.info.key_type, mechanism):
            raise UnsupportedByBackend(f"key '{label}' ({key.info.key_type}) cannot verify {mechanism.scheme}")
        if key.info.key_type.is_post_quantum:
            return softpq.verify(key.info.key_type, key.info.public_key, mechanism, data, signature, context)
        if key.info.key_type is KeyType.BLS:
            return softbls.verify(key.info.public_key, data, signature)
        if key.info.key_type is KeyType.LMS:
            return softlms.verify(key.info.public_key, data, signature)
        if context:
            raise InvalidInput("a context string is only defined for ML-DSA and SLH-DSA")
        return softcrypto.verify(softcrypto.load_spki(key.info.public_key), mechanism, data, signature)

    # -- post-quantum key encapsulation and ML-KEM key wrapping (softpq) ----------------------

    def decapsulate(self, label: str, ciphertext: bytes) -> bytes:
        """ML-KEM decapsulation; the key needs ``decrypt``, ``derive`` or ``unwrap`` — the TSB's
        own client makes its ML-KEM keys with ``unwrap`` (and ``wrap``) alone and decapsulates
        with them (docs/post-quantum.md)."""
        key = self._load(label)
        if key.pq is None or key.info.key_type not in self._capabilities.kem:
            raise UnsupportedByBackend(f"key '{label}' ({key.info.key_type}) is not an ML-KEM key")
        attributes = key.info.attributes
        if not (attributes.decrypt or attributes.derive or attributes.unwrap):
            raise OperationNotPermitted(f"key '{label}' has none of the decrypt, derive and unwrap attributes")
        return softpq.decapsulate(key.pq, ciphertext)

    def ecies_file_key(self, label: str, ephemeral_point: bytes, header: bytes) -> bytes:
        key = self._load(label)
        if not isinstance(key.private, ec.EllipticCurvePrivateKey) or key.info.key_type is not KeyType.EC:
            raise UnsupportedByBackend(f"key '{label}' ({key.info.key_type}) is not an EC private key")
        if not key.info.attributes.derive:
            raise OperationNotPermitted(f"key '{label}' does not have the derive attribute")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(key.private.curve, ephemeral_point)
        except ValueError:
            raise InvalidInput(f"the ephemeral public key is not a point of the curve of key '{label}'") from None
        return file_container.file_key(key.private.exchange(ec.ECDH(), peer), header)

    def _kem_wrap(self, wrapping_label: str, target_label: str) -> bytes:
        wrapping = self._load(wrapping_label)
        if wrapping.info.key_type not in softpq.ML_KEM_TYPES or wrapping.info.public_key is None:
            raise UnsupportedByBackend(f"key '{wrapping_label}' ({wrapping.info.key_type}) cannot wrap with ML-KEM")
        if not wrapping.info.attributes.wrap:
            raise OperationNotPermitted(f"key '{wrapping_label}' does not have the wrap attribute")
        target = self._load(target_label).info
        if not target.attributes.extractable:
            raise OperationNotPermitted(f"key '{target_label}' is not extractable")
        record = self._repo.get(target_label)
        if record is None:
            raise KeyNotFound(f"key '{target_label}' not found")
        material = self._sealer.open(self.name, target_label, record.nonce, record.sealed_material)
        return softpq.kem_wrap(wrapping.info.key_type, wrapping.info.public_key, material)

    def _kem_unwrap(self, unwrapping_label: str, wrapped: bytes, *, label: str, spec: KeySpec,
                    attributes: KeyAttributes) -> KeyInfo:
        unwrapping = self._load(unwrapping_label)
        if unwrapping.pq is None or unwrapping.info.key_type not in softpq.ML_KEM_TYPES:
            raise UnsupportedByBackend(
                f"key '{unwrapping_label}' ({unwrapping.info.key_type}) cannot unwrap with ML-KEM")
        if not unwrapping.info.attributes.unwrap:
            raise OperationNotPermitted(f"key '{unwrapping_label}' does not have the unwrap attribute")
        material = softpq.kem_unwrap(unwrapping.pq, wrapped)
        size, curve_oid, public_der = _describe_material(spec, material)
        attributes = attributes.with_history(always_sensitive=False, never_extractable=False)
        nonce, sealed = self._sealer.seal(self.name, label, material)
        record = SealedKey(
            label=label, key_id=None, key_type=spec.key_type.value, key_size=size, curve_oid=curve_oid,
            attributes=asdict(attributes), public_key=public_der, sealed_material=sealed, nonce=nonce,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        try:
            self._repo.add(record)
        except self._repo.DuplicateLabel:
            raise KeyExists(f"a key with label '{label}' already exists") from None
        return self._info(record)

    def wrap(self, wrapping_label: str, mechanism: WrapMechanism, target_label: str) -> bytes:
        if mechanism.mode is WrapMode.ML_KEM_AES_KWP:
            return self._kem_wrap(wrapping_label, target_label)
        return self._classic_wrap(wrapping_label, mechanism, target_label)

    def unwrap(self, unwrapping_label: str, mechanism: WrapMechanism, wrapped: bytes, *, label: str,
               spec: KeySpec, attributes: KeyAttributes) -> KeyInfo:
        if mechanism.mode is WrapMode.ML_KEM_AES_KWP:
            return self._kem_unwrap(unwrapping_label, wrapped, label=label, spec=spec, attributes=attributes)
        return self._classic_unwrap(unwrapping_label, mechanism, wrapped, label=label, spec=spec,
                                    attributes=attributes)

    # -- encryption, HMAC, AES/RSA key wrapping, import and export (softcipher) ----------------

    def encrypt(self, label: str, mechanism: CipherMechanism, data: bytes, *, iv: bytes | None = None,
                aad: bytes | None = None) -> EncryptResult:
        key = self._load(label)
        if not key.info.attributes.encrypt:
            raise OperationNotPermitted(f"key '{label}' does not have the encrypt attribute")
        self._require_cipher(key.info, mechanism)
        if iv is not None:
            raise InvalidInput("the soft token generates initialization vectors itself")
        if key.info.key_type is KeyType.RSA:
            public = softcrypto.load_spki(key.info.public_key or b"")
            return softcipher.encrypt_rsa(public, mechanism, data)  # type: ignore[arg-type]
        return softcipher.encrypt_symmetric(key.info.key_type, key.secret or b"", mechanism, data, aad)

    def decrypt(self, label: str, mechanism: CipherMechanism, data: bytes, *, iv: bytes | None = None,
                aad: bytes | None = None, tag: bytes | None = None) -> bytes:
        key = self._load(label)
        if not key.info.attributes.decrypt:
            raise OperationNotPermitted(f"key '{label}' does not have the decrypt attribute")
        self._require_cipher(key.info, mechanism)
        if key.info.key_type is KeyType.RSA:
            if not isinstance(key.private, rsa.RSAPrivateKey):
                raise OperationNotPermitted(f"key '{label}' is a public key without its private key")
            raw = self._raw_rsa(key) if mechanism.mode is CipherMode.RSA_RAW else None
            return softcipher.decrypt_rsa(key.private, mechanism, data, raw)
        return softcipher.decrypt_symmetric(key.info.key_type, key.secret or b"", mechanism, data,
                                            iv=iv, aad=aad, tag=tag)

    def hmac(self, label: str, data: bytes) -> bytes:
        key = self._hmac_key(label)
        if not key.info.attributes.sign:
            raise OperationNotPermitted(f"key '{label}' does not have the sign attribute")
        return softcipher.hmac(key.info.key_type, key.secret or b"", data)

    def hmac_verify(self, label: str, data: bytes, mac: bytes) -> bool:
        key = self._hmac_key(label)
        if not key.info.attributes.verify:
            raise OperationNotPermitted(f"key '{label}' does not have the verify attribute")
        return softcipher.hmac_verify(key.info.key_type, key.secret or b"", data, mac)

    def import_key(self, label: str, *, key_type: KeyType, attributes: KeyAttributes,
                   private_key: bytes | None = None, public_key: bytes | None = None,
                   secret_key: bytes | None = None, curve_oid: str | None = None) -> KeyInfo:
        """Stores PKCS#8 DER, raw secret bytes or — for a public key alone — SPKI DER. A public
        key alone replaces an existing public key alone of the same label (as a PKCS#11 public
        key object would be replaced); any other existing key makes it KeyExists."""
        if key_type not in self._capabilities.key_import:
            raise UnsupportedByBackend(f"the soft token cannot import {key_type} keys")
        spec = KeySpec(key_type, curve_oid=curve_oid)
        material = private_key if private_key is not None else secret_key
        try:
            if material:
                size, curve, public_der = _describe_external(spec, material)
            elif public_key:
                size, curve, public_der = _describe_public(key_type, public_key)
            else:
                raise InvalidInput("nothing to import: give a private, public or secret key")
        except DecryptFailed as exc:
            raise InvalidInput(str(exc).replace("unwrapped material", "imported key")) from None
        return self._store_external(label, key_type, attributes, material or b"", size, curve, public_der,
                                    replace_public=not material)

    def export_key(self, label: str) -> ExportedKey:
        key = self._load(label)
        if key.bls is not None:
            raise UnsupportedByBackend(f"the soft token cannot export {key.info.key_type} keys (wrap them instead)")
        if key.lms is not None:
            raise OperationNotPermitted(f"key '{label}' is a stateful LMS key: a copy could reuse one-time keys, "
                                        "so it never leaves the token")
        if key.info.key_type.is_asymmetric and key.private is None and key.pq is None:
            return ExportedKey(public_key=key.info.public_key)  # a public key alone is public
        attributes = key.info.attributes
        if not attributes.extractable or attributes.sensitive:
            raise OperationNotPermitted(f"key '{label}' can only be exported when it is extractable and not sensitive")
        if key.private is not None:
            return ExportedKey(private_key=softcipher.blob_of_private_key(key.private), public_key=key.info.public_key)
        if key.pq is not None:
            raise UnsupportedByBackend(f"the soft token cannot export {key.info.key_type} keys")
        return ExportedKey(secret_key=key.secret)

    def _require_cipher(self, info: KeyInfo, mechanism: CipherMechanism) -> None:
        if not self._capabilities.can_encrypt(info.key_type, mechanism):
            raise UnsupportedByBackend(f"key '{info.label}' ({info.key_type}) cannot be used with {mechanism.mode}")

    def _hmac_key(self, label: str) -> _LoadedKey:
        key = self._load(label)
        if key.info.key_type not in self._capabilities.hmac:
            raise UnsupportedByBackend(f"key '{label}' ({key.info.key_type}) is not an HMAC key")
        return key

    def _classic_wrap(self, wrapping_label: str, mechanism: WrapMechanism, target_label: str) -> bytes:
        """AES-KW / AES-KWP / RSA wrap: a secret key as its raw bytes, a private key as PKCS#8 DER."""
        wrapping = self._load(wrapping_label)
        if not self._capabilities.can_wrap(wrapping.info.key_type, mechanism):
            raise UnsupportedByBackend(f"key '{wrapping_label}' ({wrapping.info.key_type}) cannot wrap with "
                                       f"{mechanism.mode}")
        if not wrapping.info.attributes.wrap:
            raise OperationNotPermitted(f"key '{wrapping_label}' does not have the wrap attribute")
        target = self._load(target_label)
        if not target.info.attributes.extractable:
            raise OperationNotPermitted(f"key '{target_label}' is not extractable")
        is_private = target.info.key_type.is_asymmetric
        if target.lms is not None:
            raise OperationNotPermitted(f"key '{target_label}' is a stateful LMS key: a copy could reuse one-time "
                                        "keys, so it is never wrapped")
        if target.bls is not None:  # AES_WRAP(_PAD)_BLS: the 32-byte secret key (softbls)
            if wrapping.info.key_type is not KeyType.AES:
                raise UnsupportedByBackend(f"{mechanism.mode} wraps secret keys only")
            return softcipher.wrap_with_aes(wrapping.secret or b"", mechanism,
                                            target.bls.to_bytes(softbls.SECRET_SIZE, "big"), private=False)
        if is_private:
            if target.private is None:
                raise UnsupportedByBackend(f"key '{target_label}' has no private key this token can wrap")
            material = softcipher.blob_of_private_key(target.private)
        else:
            material = target.secret or b""
        if wrapping.info.key_type is KeyType.AES:
            return softcipher.wrap_with_aes(wrapping.secret or b"", mechanism, material, private=is_private)
        if is_private:
            raise UnsupportedByBackend(f"{mechanism.mode} wraps secret keys only")
        public = softcrypto.load_spki(wrapping.info.public_key or b"")
        return softcipher.wrap_with_rsa(public, mechanism, material)  # type: ignore[arg-type]

    def _classic_unwrap(self, unwrapping_label: str, mechanism: WrapMechanism, wrapped: bytes, *, label: str,
                        spec: KeySpec, attributes: KeyAttributes) -> KeyInfo:
        key = self._load(unwrapping_label)
        if not self._capabilities.can_wrap(key.info.key_type, mechanism):
            raise UnsupportedByBackend(f"key '{unwrapping_label}' ({key.info.key_type}) cannot unwrap with "
                                       f"{mechanism.mode}")
        if not key.info.attributes.unwrap:
            raise OperationNotPermitted(f"key '{unwrapping_label}' does not have the unwrap attribute")
        if key.info.key_type is KeyType.AES:
            material = softcipher.unwrap_with_aes(key.secret or b"", mechanism, wrapped)
            if spec.key_type.is_asymmetric and spec.key_type is not KeyType.BLS and mechanism.mode is WrapMode.AES_KW:
                material = softcipher.strip_der_padding(material)
        elif isinstance(key.private, rsa.RSAPrivateKey):
            material = softcipher.unwrap_with_rsa(key.private, mechanism, wrapped)
        else:
            raise OperationNotPermitted(f"key '{unwrapping_label}' is a public key without its private key")
        if spec.size is not None and not spec.key_type.is_asymmetric and len(material) * 8 != spec.size:
            raise DecryptFailed(f"the unwrapped key has {len(material) * 8} bits, not {spec.size}")
        size, curve, public_der = _describe_external(spec, material)
        return self._store_external(label, spec.key_type, attributes, material, size, curve, public_der)

    def _store_external(self, label: str, key_type: KeyType, attributes: KeyAttributes, material: bytes,
                        size: int | None, curve_oid: str | None, public_der: bytes | None, *,
                        replace_public: bool = False) -> KeyInfo:
        """Seals key material made outside the token (imported or unwrapped): never
        ``always_sensitive`` nor ``never_extractable``."""
        attributes = attributes.with_history(always_sensitive=False, never_extractable=False)
        nonce, sealed = self._sealer.seal(self.name, label, material)
        record = SealedKey(
            label=label, key_id=None, key_type=key_type.value, key_size=size, curve_oid=curve_oid,
            attributes=asdict(attributes), public_key=public_der, sealed_material=sealed, nonce=nonce,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        try:
            self._repo.add(record)
        except self._repo.DuplicateLabel:
            existing = self._load(label) if replace_public else None
            if existing is None or not existing.info.key_type.is_asymmetric or existing.private is not None \
                    or existing.pq is not None:
                raise KeyExists(f"a key with label '{label}' already exists") from None
            with self._lock:
                self._cache.pop(label, None)
            self._repo.remove(label)
            try:
                self._repo.add(record)
            except self._repo.DuplicateLabel:
                raise KeyExists(f"a key with label '{label}' already exists") from None
        return self._info(record)

    def generate_random(self, length: int) -> bytes:
        return secrets.token_bytes(length)

    def check_master_key(self, label: str) -> None:
        """Raise :class:`BackendUnavailable` when the master key does not unseal key ``label`` (or,
        without it, any key of the partition); an empty partition has nothing to check. Called at
        start-up: serving with a wrong master key would seal new keys under it."""
        labels = self._repo.labels()
        if not labels:
            return
        probe = label if label in labels else labels[0]
        record = self._repo.get(probe)
        if record is not None:
            self._sealer.open(self.name, probe, record.nonce, record.sealed_material)

    def close(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- internals -------------------------------------------------------------------------

    def _info(self, record: SealedKeyRecord) -> KeyInfo:
        names = {f.name for f in fields(KeyAttributes)}
        attributes = KeyAttributes(**{k: v for k, v in record.attributes.items() if k in names})
        created = record.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return KeyInfo(
            label=record.label, key_type=KeyType(record.key_type), attributes=attributes,
            size=record.key_size, curve_oid=record.curve_oid, key_id=record.key_id,
            public_key=record.public_key, created_at=created,
            derivation=NodeInfo.from_record(dict(record.derivation)) if record.derivation else None,
            one_time_keys=(record.next_index, 1 << (record.key_size or 0))
            if record.next_index is not None and record.key_type == KeyType.LMS.value else None,
        )

    def _cached(self, label: str) -> _LoadedKey | None:
        """The cached key if its record is still the one it was unsealed from. Another process
        sharing the database may have deleted or replaced it: unless the key generation token is
        the one the entry was checked at, one indexed lookup of the nonce (the token is read first,
        so it is never newer than what the lookup saw)."""
        cached = self._cache.get(label)
        if cached is None:
            return None
        token = self._repo.key_generation.current()
        if token is not None and token == cached.token:
            return cached
        # a temporary child is re-derived once anything moved: a persisted child of its name may now exist
        if cached.source == label and self._repo.record_nonce(label) == cached.nonce:
            cached.token = token
            return cached
        with self._lock:
            if self._cache.get(label) is cached:
                del self._cache[label]
        return None

    def _load(self, label: str) -> _LoadedKey:
        cached = self._cached(label)
        if cached is not None:
            return cached
        token = self._repo.key_generation.current()  # before the read, as in _cached
        record = self._repo.get(label)
        if record is None:
            if "/" in label:
                return self._derived(label)
            raise KeyNotFound(f"key '{label}' not found")
        material = self._sealer.open(self.name, label, record.nonce, record.sealed_material)
        info = self._info(record)
        if softderive.is_master_material(material):
            hd = softderive.load_master(material)
            loaded = _LoadedKey(info, record.nonce, private=softderive.node(hd).private, hd=hd)
        elif info.key_type.is_asymmetric and not material:  # an imported public key without its private key
            loaded = _LoadedKey(info, record.nonce)
        elif info.key_type.is_post_quantum:
            loaded = _LoadedKey(info, record.nonce, pq=softpq.load(info.key_type, material))
        elif info.key_type is KeyType.BLS:
            loaded = _LoadedKey(info, record.nonce, bls=softbls.load(material))
        elif softlms.is_lms_material(material):
            loaded = _LoadedKey(info, record.nonce, lms=softlms.load(material))
        elif info.key_type.is_asymmetric:
            private = serialization.load_der_private_key(material, password=None)
            loaded = _LoadedKey(info, record.nonce, private=private)  # type: ignore[arg-type]
        else:
            loaded = _LoadedKey(info, record.nonce, secret=material)
        loaded.token = token
        loaded.source = label
        with self._lock:
            self._remember(label, loaded)
        return loaded

    def _remember(self, label: str, loaded: _LoadedKey) -> None:
        """Cache ``loaded`` (under the lock), making room by forgetting the oldest unsealed entries."""
        if self._cache_size <= 0:
            return
        self._cache.pop(label, None)
        while len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]
        self._cache[label] = loaded

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
    ) | {(KeyType.EC, SignMechanism(SignScheme.BIP340, None, True)),  # secp256k1 only (softschnorr)
         (KeyType.BLS, SignMechanism(SignScheme.BLS)),  # softbls
         (KeyType.LMS, SignMechanism(SignScheme.HSS_LMS))}  # softlms
    key_specs[KeyType.BLS] = frozenset()
    key_specs[KeyType.LMS] = frozenset(softlms.HEIGHTS)
    # post-quantum (softpq): no size parameter; ML-KEM decapsulates and wraps (KEM + AES-KWP)
    key_specs.update({t: frozenset() for t in softpq.PARAMETER_SETS})
    sign |= frozenset((t, m) for t in softpq.PARAMETER_SETS for m in softpq.sign_mechanisms(t))
    kem_wrap = frozenset((t, WrapMechanism(WrapMode.ML_KEM_AES_KWP)) for t in softpq.ML_KEM_TYPES)
    return _with_operations(
        Capabilities(backend="soft", key_specs=key_specs, sign=sign, kem=softpq.ML_KEM_TYPES, wrap=kem_wrap,
                     derivation=softderive.SUPPORTED))


def _curve_size(key_type: KeyType, curve_oid: str) -> int:
    return softcrypto.ED_CURVES[curve_oid] if key_type is KeyType.ED else softcrypto.EC_CURVES[curve_oid][1]


def _describe_material(spec: KeySpec, material: bytes) -> tuple[int | None, str | None, bytes | None]:
    """(size, curve OID, SPKI) of unwrapped key material in the soft token's storage format —
    PKCS#8 DER, raw secret bytes or softpq material — checked against ``spec``; DecryptFailed when
    the material is not a key of that type."""
    key_type = spec.key_type
    try:
        if key_type.is_post_quantum:
            return None, None, softpq.load(key_type, material).spki
        if key_type is KeyType.BLS:
            return None, None, softbls.spki(softbls.load(material))
        if key_type.is_asymmetric:
            private = serialization.load_der_private_key(material, password=None)
            if softcrypto.key_type_of(private) is not key_type:  # type: ignore[arg-type]
                raise ValueError("different key type")
            public = softcrypto.spki_der(private.public_key())  # type: ignore[arg-type]
            if key_type is KeyType.EC:
                curve = private.curve.name  # type: ignore[union-attr]
                oid = next(o for o, (c, _) in softcrypto.EC_CURVES.items() if c.name == curve)
                return softcrypto.EC_CURVES[oid][1], oid, public
            if key_type is KeyType.ED:
                oid = softcrypto.ED448_OID if "448" in type(private).__name__ else softcrypto.ED25519_OID
                return softcrypto.ED_CURVES[oid], oid, public
            return private.key_size, None, public  # type: ignore[union-attr]
        if len(material) * 8 not in SECRET_KEY_SIZES.get(key_type, frozenset()):
            raise ValueError("wrong secret key length")
        return len(material) * 8, None, None
    except (ValueError, TypeError, InvalidInput, StopIteration) as exc:
        raise DecryptFailed(f"the unwrapped material is not a {key_type} key ({exc})") from None


def _with_operations(capabilities: Capabilities) -> Capabilities:
    """Adds what :mod:`softcipher` implements: encryption, AES/RSA key wrapping, HMAC and import."""
    cipher = frozenset((t, m) for t in (KeyType.RSA, KeyType.AES, KeyType.CAMELLIA, KeyType.TDEA, KeyType.CHACHA20)
                       for m in softcipher.cipher_mechanisms(t))
    wrap = frozenset((t, m) for t in (KeyType.AES, KeyType.RSA) for m in softcipher.wrap_mechanisms(t))
    importable = frozenset({KeyType.RSA, KeyType.DSA, KeyType.EC, KeyType.ED, *SECRET_KEY_SIZES})
    return replace(capabilities, cipher=capabilities.cipher | cipher, wrap=capabilities.wrap | wrap,
                   hmac=capabilities.hmac | frozenset(softcipher.HMAC_HASHES),
                   key_import=capabilities.key_import | importable)


def _describe_public(key_type: KeyType, spki: bytes) -> tuple[int | None, str | None, bytes]:
    """(size, curve OID, SPKI) of an imported public key; DecryptFailed when it is not a
    ``key_type`` key this token supports (the caller turns that into InvalidInput)."""
    try:
        public = softcrypto.load_spki(spki)
        if softcrypto.key_type_of(public) is not key_type:
            raise ValueError(f"it is a {softcrypto.key_type_of(public)} key")
        if key_type is KeyType.EC:
            curve = public.curve.name  # type: ignore[union-attr]
            oid = next(o for o, (c, _) in softcrypto.EC_CURVES.items() if c.name == curve)
            return softcrypto.EC_CURVES[oid][1], oid, softcrypto.spki_der(public)
        if key_type is KeyType.ED:
            oid = softcrypto.ED448_OID if "448" in type(public).__name__ else softcrypto.ED25519_OID
            return softcrypto.ED_CURVES[oid], oid, softcrypto.spki_der(public)
        return public.key_size, None, softcrypto.spki_der(public)  # type: ignore[union-attr]
    except (ValueError, TypeError, StopIteration) as exc:
        raise DecryptFailed(f"the public key is not a {key_type} key this token supports ({exc})") from None


def _describe_external(spec: KeySpec, material: bytes) -> tuple[int | None, str | None, bytes | None]:
    """:func:`_describe_material`, except that an HMAC key made elsewhere may have any length
    (RFC 2104), not only the hash's output size the token generates."""
    if spec.key_type.is_hmac:
        if not 1 <= len(material) <= 1024:
            raise DecryptFailed("an HMAC key must have 1 to 1024 bytes")
        return len(material) * 8, None, None
    return _describe_material(spec, material)
