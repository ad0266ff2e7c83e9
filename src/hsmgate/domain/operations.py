"""Encrypt, decrypt, wrap, unwrap and HMAC: TSB requests checked against the key and the backend's
declared capabilities, then executed by the partition.

Order of checks (each answered before the backend is called; the key password, reserved keys and
SKA policies are checked before by the key-use gate, ``domain/key_use.py``): the wire names (600 /
611 for a name hsmgate does not implement), ``tagLength`` (624), the key exists (650), the key type
fits the algorithm (607 / 613), the backend declares the mechanism (629 for ciphers, 611
otherwise). The backend then enforces the key's attributes (701 ``KEY_FUNCTION_NOT_PERMITTED``)
and integrity (410: wrong key, IV, tag or damaged data — never partial plaintext).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hsmgate.domain import errors
from hsmgate.domain.algorithms import (
    CIPHER_ALGORITHMS,
    TAG_LENGTHS,
    UNSUPPORTED_WRAP_METHODS,
    WRAP_METHODS,
    CipherAlgorithm,
    WrapMethod,
)
from hsmgate.domain.hsm_errors import KEY_FUNCTION_NOT_PERMITTED, translated
from hsmgate.domain.keys import KeyService, SignedKey, check_label, key_info, resolve_algorithm
from hsmgate.hsm.base import CipherMechanism, KeyAttributes, KeyInfo, KeySpec, KeyType, Partition
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.wrapped_keys import WrappedKeyRepository


class UnsupportedCipher(errors.TsbError):
    code = 629


class InvalidTagLength(errors.TsbError):
    code = 624


@dataclass(frozen=True, slots=True)
class Encrypted:
    """``EncryptRequestResponseDto`` in domain terms; None fields are null on the wire."""

    encrypted_payload: bytes
    without_mac: bytes | None = None
    iv: bytes | None = None
    mac: bytes | None = None


class OperationsService:
    """Cipher, key-wrap and HMAC operations on one partition."""

    def __init__(self, partition: Partition, *, keys: KeyService, metadata: KeyMetadataRepository,
                 wrapped_keys: WrappedKeyRepository, clock: Callable[[], datetime] | None = None) -> None:
        self.partition = partition
        self._keys = keys
        self._metadata = metadata
        self._wrapped = wrapped_keys
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- encrypt / decrypt ----------------------------------------------------------------------

    def encrypt(self, *, label: str, algorithm: str, payload: bytes, aad: bytes | None = None,
                tag_length: int = 0) -> Encrypted:
        row = _cipher(algorithm)
        tag_bits = _tag_bits(row, tag_length)
        _check_aad(row, aad)
        info = self._key(label)
        mechanism = self._cipher_mechanism(row, info, tag_bits)
        with translated():
            result = self.partition.encrypt(label, mechanism, payload, aad=aad)
        if row.key_type is KeyType.RSA:
            return Encrypted(result.ciphertext)
        tag = result.tag if row.aead else None
        return Encrypted(result.ciphertext + (tag or b""), result.ciphertext, result.iv, tag)

    def decrypt(self, *, label: str, algorithm: str, encrypted_payload: bytes, iv: bytes | None = None,
                aad: bytes | None = None, tag_length: int = 0) -> bytes:
        row = _cipher(algorithm)
        tag_bits = _tag_bits(row, tag_length)
        _check_aad(row, aad)
        if row.needs_iv and not iv:
            raise errors.ValidationFailed(f"'initializationVector' must not be empty for {row.wire_name}")
        info = self._key(label)
        mechanism = self._cipher_mechanism(row, info, tag_bits)
        data, tag = encrypted_payload, None
        if row.aead:
            tag_bytes = (mechanism.tag_bits or 128) // 8
            if len(data) < tag_bytes:
                raise errors.TsbError(f"decryption failed: 'encryptedPayload' is shorter than the {tag_bytes}-byte tag",
                                      code=410)
            data, tag = data[:-tag_bytes], data[-tag_bytes:]
        with translated():
            return self.partition.decrypt(label, mechanism, data, iv=iv if row.needs_iv else None, aad=aad, tag=tag)

    def _cipher_mechanism(self, row: CipherAlgorithm, info: KeyInfo, tag_bits: int | None) -> CipherMechanism:
        if info.key_type is not row.key_type:
            raise errors.AlgorithmNotSupportedByKey(
                f"cipherAlgorithm {row.wire_name} needs a {row.key_type} key; key '{info.label}' is {info.key_type}"
            )
        mechanism = row.mechanism(tag_bits)
        capabilities = self.partition.capabilities()
        if not capabilities.can_encrypt(info.key_type, mechanism):
            raise UnsupportedCipher(
                f"cipherAlgorithm {row.wire_name} is not supported by the {capabilities.backend} backend"
            )
        return mechanism

    # -- wrap / unwrap --------------------------------------------------------------------------

    def wrap(self, *, key_label: str, wrap_label: str, method: str) -> bytes:
        """The wrapped key. A secret key travels as its raw bytes, a private key as PKCS#8 DER."""
        row = _wrap_method(method)
        wrapping = self._key(wrap_label)
        target = self._key(key_label)
        self._check_wrapping_key(row, wrapping)
        if target.key_type not in row.wrapped_key_types:
            raise errors.InvalidKeyType(
                f"wrapMethod {row.wire_name} does not wrap {target.key_type} keys; key '{key_label}' is "
                f"{target.key_type}{_wrap_hint(target.key_type, row)}"
            )
        if not target.attributes.extractable:
            raise errors.TsbError(f"{KEY_FUNCTION_NOT_PERMITTED}: key '{key_label}' is not extractable",
                                  code=701, status=400)
        with translated():
            blob = self.partition.wrap(wrap_label, row.mechanism, key_label)
        self._wrapped.remember(_digest(blob), target.key_type.value, self._now())
        return blob

    def unwrap(self, *, wrapped: bytes, label: str, attributes: KeyAttributes, unwrap_label: str,
               method: str, algorithm: str | None = None) -> SignedKey:
        """Unwrap into a new key ``label``; its algorithm is the original's (see :meth:`_unwrapped_type`)."""
        row = _wrap_method(method)
        check_label(label)
        if not (attributes.decrypt or attributes.sign or attributes.unwrap):
            raise errors.KeyAttributesInvalid("at least one of 'decrypt', 'sign' or 'unwrap' must be true")
        unwrapping = self._key(unwrap_label)
        self._check_wrapping_key(row, unwrapping)
        key_type = self._unwrapped_type(row, wrapped, algorithm)
        with translated():
            self.partition.unwrap(unwrap_label, row.mechanism, wrapped, label=label, spec=KeySpec(key_type),
                                  attributes=attributes)
        self._metadata.set_origin(label, "imported", public_only=False, when=self._now())
        return self._keys.describe(label)

    def _check_wrapping_key(self, row: WrapMethod, info: KeyInfo) -> None:
        if info.key_type not in row.wrapping_key_types:
            needed = " or ".join(sorted(t.value for t in row.wrapping_key_types))
            raise errors.AlgorithmNotSupportedByKey(
                f"wrapMethod {row.wire_name} needs a {needed} key to wrap with; key '{info.label}' is {info.key_type}"
            )
        capabilities = self.partition.capabilities()
        if not capabilities.can_wrap(info.key_type, row.mechanism):
            raise errors.UnsupportedOperation(
                f"wrapMethod {row.wire_name} is not supported by the {capabilities.backend} backend"
            )

    def _unwrapped_type(self, row: WrapMethod, wrapped: bytes, algorithm: str | None) -> KeyType:
        """The type of the key inside a blob: the method's suffix names it for private keys; for a
        secret key the request's ``algorithm`` (hsmgate extension), else the type recorded when
        this deployment wrapped the blob, else AES."""
        allowed = row.wrapped_key_types
        wanted = resolve_algorithm(algorithm, None).key_type if algorithm else None
        if wanted is not None and wanted not in allowed:
            raise errors.InvalidKeyType(f"wrapMethod {row.wire_name} does not carry {wanted} keys")
        if len(allowed) == 1:
            return next(iter(allowed))
        if wanted is not None:
            return wanted
        recorded = self._wrapped.key_type(_digest(wrapped))
        if recorded is not None and KeyType(recorded) in allowed:
            return KeyType(recorded)
        return KeyType.AES

    # -- HMAC -----------------------------------------------------------------------------------

    def hmac(self, *, label: str, payload: bytes) -> bytes:
        self._hmac_key(label)
        with translated():
            return self.partition.hmac(label, payload)

    def hmac_verify(self, *, label: str, payload: bytes, mac: bytes) -> bool:
        self._hmac_key(label)
        with translated():
            return self.partition.hmac_verify(label, payload, mac)

    def _hmac_key(self, label: str) -> KeyInfo:
        info = self._key(label)
        if not info.key_type.is_hmac:
            raise errors.AlgorithmNotSupportedByKey(f"key '{label}' ({info.key_type}) is not an HMAC key")
        capabilities = self.partition.capabilities()
        if info.key_type not in capabilities.hmac:
            raise errors.UnsupportedOperation(f"HMAC with {info.key_type} is not supported by the "
                                              f"{capabilities.backend} backend")
        return info

    # -- helpers --------------------------------------------------------------------------------

    def _key(self, label: str) -> KeyInfo:
        return key_info(self.partition, label)

    def _now(self) -> datetime:
        return self._clock().replace(microsecond=0)


def _cipher(name: str) -> CipherAlgorithm:
    row = CIPHER_ALGORITHMS.get(name)
    if row is None:
        raise errors.ValidationFailed(f"Value '{name}' is not valid for field 'cipherAlgorithm'")
    return row


def _wrap_method(name: str) -> WrapMethod:
    row = WRAP_METHODS.get(name)
    if row is not None:
        return row
    if name in UNSUPPORTED_WRAP_METHODS:
        raise errors.UnsupportedOperation(f"wrapMethod {name} is not supported by hsmgate (it has no BLS keys)")
    raise errors.ValidationFailed(f"Value '{name}' is not valid for field 'wrapMethod'")


def _tag_bits(row: CipherAlgorithm, tag_length: int | None) -> int | None:
    """The AEAD tag length in bits: ``tagLength`` 0 (or absent) means 128."""
    value = tag_length or 0
    if value not in TAG_LENGTHS:
        raise InvalidTagLength(f"'tagLength' {value} is not one of {', '.join(map(str, TAG_LENGTHS))}")
    if not row.aead:
        return None
    bits = value or 128
    if row.wire_name == "CHACHA20_AEAD" and bits != 128:
        raise InvalidTagLength("'tagLength' must be 0 or 128 for CHACHA20_AEAD (Poly1305 has a 128-bit tag)")
    return bits


def _check_aad(row: CipherAlgorithm, aad: bytes | None) -> None:
    if aad and not row.aead:
        raise errors.ValidationFailed(
            f"'additionalAuthenticationData' is only used by AES_GCM and CHACHA20_AEAD, not {row.wire_name}"
        )


def _wrap_hint(key_type: KeyType, row: WrapMethod) -> str:
    if key_type.is_asymmetric and row.wire_name.startswith("AES_WRAP"):
        prefix = "AES_WRAP_PAD" if row.wire_name.startswith("AES_WRAP_PAD") else "AES_WRAP"
        return f" (use {prefix}_{key_type.value})"
    return ""


def _digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()
