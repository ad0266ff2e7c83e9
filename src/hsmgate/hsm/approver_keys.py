"""Approver key pairs of approver management (wave-2 §2.1, §2.5): made, sealed and opened here, the
only layer that touches key material.

* :func:`create_approver` generates the approver's RSA key pair (2048, 3072 or 4096 bits, e = 65537)
  with ``cryptography`` and a self-signed X.509 certificate (CN = the approver's name, SHA-256 with
  RSA, ``validity_days`` from now), packs both into a PKCS#12 protected by the backup password
  (PBES2, AES-256-CBC, the key and the container share that password; friendly name = the
  approver's name), and seals it: a fresh AES-256 data key encrypts the PKCS#12 (``backup``) and
  the private key as unencrypted PKCS#8 DER (``recovery``, for a forgotten backup password), each
  with AES-256-GCM (12-byte random nonce, 16-byte tag: nonce‖ciphertext‖tag, the associated data
  binding partition and approver name); the data key itself is encrypted with RSA-OAEP by the
  partition's backup key (a key of the backend, the hybrid a public RSA key needs for a large blob).
* :func:`open_backup` has the backend decrypt the data key and returns the PKCS#12 (still protected
  by the backup password); :func:`reseal_with_password` rebuilds the PKCS#12 under a new password
  from ``recovery``.
* :func:`transport_encrypt`: the onboarding payload, AES-GCM under the approver's transport
  password (16 or 32 bytes: AES-128 or AES-256), 12-byte random IV, ciphertext‖16-byte tag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from hsmgate.hsm.base import (
    CipherMechanism,
    CipherMode,
    DecryptFailed,
    HashAlg,
    InvalidInput,
    KeyType,
    Partition,
)

APPROVER_KEY_SIZES = (2048, 3072, 4096)
NONCE_BYTES = 12
TRANSPORT_KEY_BYTES = (16, 32)


@dataclass(frozen=True, slots=True)
class SealedApprover:
    """An approver's certificate and its sealed secrets, as stored."""

    certificate: bytes
    oaep_hash: HashAlg
    wrapped_data_key: bytes
    backup: bytes
    recovery: bytes


def oaep_hash(partition: Partition) -> HashAlg:
    """The OAEP hash the backup key encrypts data keys with: SHA-256 where the backend has it
    (the soft token), else SHA-1 (SoftHSM2 and other modules that offer OAEP with SHA-1 only)."""
    if partition.capabilities().can_encrypt(KeyType.RSA, CipherMechanism(CipherMode.RSA_OAEP, hash=HashAlg.SHA256)):
        return HashAlg.SHA256
    return HashAlg.SHA1


def _pkcs12(name: str, key: rsa.RSAPrivateKey, certificate: x509.Certificate, password: bytes) -> bytes:
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                  .kdf_rounds(100_000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                  .hmac_hash(hashes.SHA256())
                  .build(password))
    return pkcs12.serialize_key_and_certificates(name.encode("utf-8"), key, certificate, None, encryption)


def _seal(partition: Partition, backup_key: str, certificate: bytes, pkcs12_bytes: bytes,
          key: rsa.RSAPrivateKey, aad: bytes) -> SealedApprover:
    data_key = AESGCM.generate_key(bit_length=256)
    cipher = AESGCM(data_key)
    nonce_backup, nonce_recovery = os.urandom(NONCE_BYTES), os.urandom(NONCE_BYTES)
    recovery_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    digest = oaep_hash(partition)
    wrapped = partition.encrypt(backup_key, CipherMechanism(CipherMode.RSA_OAEP, hash=digest), data_key)
    return SealedApprover(
        certificate=certificate, oaep_hash=digest, wrapped_data_key=wrapped.ciphertext,
        backup=nonce_backup + cipher.encrypt(nonce_backup, pkcs12_bytes, aad + b"|backup"),
        recovery=nonce_recovery + cipher.encrypt(nonce_recovery, recovery_der, aad + b"|recovery"),
    )


def create_approver(partition: Partition, backup_key: str, *, name: str, key_size: int, validity_days: int,
                    backup_password: bytes, aad: bytes, now: datetime | None = None) -> SealedApprover:
    """A new approver key pair and certificate, sealed under ``backup_key`` (module text)."""
    if key_size not in APPROVER_KEY_SIZES:
        raise InvalidInput(f"approver key size {key_size} is not one of {APPROVER_KEY_SIZES}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    start = (now or datetime.now(UTC)).replace(microsecond=0)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(start + timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _seal(partition, backup_key, certificate.public_bytes(serialization.Encoding.DER),
                 _pkcs12(name, key, certificate, backup_password), key, aad)


def _data_key(partition: Partition, backup_key: str, sealed: SealedApprover) -> AESGCM:
    mechanism = CipherMechanism(CipherMode.RSA_OAEP, hash=sealed.oaep_hash)
    return AESGCM(partition.decrypt(backup_key, mechanism, sealed.wrapped_data_key))


def _open(cipher: AESGCM, blob: bytes, aad: bytes) -> bytes:
    try:
        return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptFailed("the approver's sealed backup does not open (tampered, or another record's)") from None


def open_backup(partition: Partition, backup_key: str, sealed: SealedApprover, aad: bytes) -> bytes:
    """The approver's PKCS#12 (protected by its backup password)."""
    return _open(_data_key(partition, backup_key, sealed), sealed.backup, aad + b"|backup")


def encrypt_secret(partition: Partition, backup_key: str, secret: bytes) -> bytes:
    """``secret`` (a new backup password, waiting for approvals) RSA-OAEP-encrypted under the
    backup key, so that only the approved execution can read it."""
    digest = oaep_hash(partition)
    mechanism = CipherMechanism(CipherMode.RSA_OAEP, hash=digest)
    return digest.value.encode("ascii") + b":" + partition.encrypt(backup_key, mechanism, secret).ciphertext


def _decrypt_secret(partition: Partition, backup_key: str, blob: bytes) -> bytes:
    name, _, ciphertext = blob.partition(b":")
    try:
        digest = HashAlg(name.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise DecryptFailed("the sealed password names no known OAEP hash") from None
    return partition.decrypt(backup_key, CipherMechanism(CipherMode.RSA_OAEP, hash=digest), ciphertext)


def reseal_with_password(partition: Partition, backup_key: str, sealed: SealedApprover, *, name: str,
                         encrypted_password: bytes, aad: bytes) -> SealedApprover:
    """The same key pair and certificate, its PKCS#12 now under the password
    :func:`encrypt_secret` sealed, sealed afresh."""
    new_password = _decrypt_secret(partition, backup_key, encrypted_password)
    der = _open(_data_key(partition, backup_key, sealed), sealed.recovery, aad + b"|recovery")
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DecryptFailed("the approver's sealed key is not an RSA key")
    certificate = x509.load_der_x509_certificate(sealed.certificate)
    return _seal(partition, backup_key, sealed.certificate, _pkcs12(name, key, certificate, new_password), key, aad)


def transport_encrypt(payload: bytes, transport_key: bytes) -> tuple[bytes, bytes]:
    """(IV, ciphertext‖tag): AES-GCM (128-bit tag, no associated data) under ``transport_key``."""
    if len(transport_key) not in TRANSPORT_KEY_BYTES:
        raise InvalidInput(f"the transport key must be 16 or 32 bytes, not {len(transport_key)}")
    iv = os.urandom(NONCE_BYTES)
    return iv, AESGCM(transport_key).encrypt(iv, payload, None)
