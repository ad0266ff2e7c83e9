"""Where ``hsmgate approver`` keeps an approver's key (docs/approvers.md, "The command line").

* :class:`FileKey`: one PEM file, mode 0600, created exclusively (never overwritten): the private key
  as PKCS#8 encrypted with the key password (``cryptography``'s best available encryption:
  PBES2, AES-256-CBC) and the approver's certificate. A file that group or others may read is
  refused, as ``master.key`` is.
* :class:`TokenKey`: the private key imported into a PKCS#11 token (sensitive, never extractable,
  sign only) through hsmgate's PKCS#11 backend; the token signs. Its public key identifies the
  approver.

Approvers sign as the TSB's approval clients do: RSASSA-PKCS1-v1_5 with SHA-256.
"""

from __future__ import annotations

import os
import re
import stat
from abc import ABC, abstractmethod
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hsmgate.hsm.base import HashAlg, HsmError, KeyAttributes, KeyType, SignMechanism, SignScheme

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----\s*", re.DOTALL)
SIGNATURE = SignMechanism(SignScheme.RSA_PKCS1V15, HashAlg.SHA256)


class KeyStoreError(Exception):
    """The approver's key cannot be stored or opened; the message says why and what to do."""


class ApproverKey(ABC):
    """An approver's key as the commands use it."""

    certificate: bytes | None
    public_key: bytes

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 over ``data``."""


class FileKey(ApproverKey):
    """The key of a key file (module text)."""

    def __init__(self, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate.public_bytes(serialization.Encoding.DER)
        self.public_key = key.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    @staticmethod
    def save(path: Path, key: rsa.RSAPrivateKey, certificate: x509.Certificate, password: str) -> None:
        """Write a new key file (0600); refuses to replace an existing one."""
        if not password:
            raise KeyStoreError("the key password must not be empty")
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(password.encode("utf-8")))
        pem += certificate.public_bytes(serialization.Encoding.PEM)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyStoreError(f"{path} exists already: choose another --key-file (it is never overwritten)") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot create {path}: {exc.strerror}") from None
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)

    @classmethod
    def load(cls, path: Path, password: str) -> FileKey:
        """Open a key file; refused when others may read it, or with a wrong password."""
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except OSError as exc:
            raise KeyStoreError(f"cannot read the approver key file {path}: {exc.strerror} "
                                "(register first: hsmgate approver register)") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(f"{path} may be read by group or others (mode {stat.S_IMODE(mode):o}): "
                                "chmod 600 it, and think about whether the key was exposed")
        blocks = {match.group(1).decode(): match.group(0) for match in _PEM_BLOCK.finditer(data)}
        if "ENCRYPTED PRIVATE KEY" not in blocks or "CERTIFICATE" not in blocks:
            raise KeyStoreError(f"{path} is not an approver key file of hsmgate")
        try:
            key = serialization.load_pem_private_key(blocks["ENCRYPTED PRIVATE KEY"], password.encode("utf-8"))
        except (ValueError, TypeError):
            raise KeyStoreError(f"the key password does not open {path}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyStoreError(f"{path} holds no RSA key")
        return cls(key, x509.load_pem_x509_certificate(blocks["CERTIFICATE"]))


class TokenKey(ApproverKey):
    """The key on a PKCS#11 token (module text)."""

    def __init__(self, module: str, token_label: str, pin: str, label: str) -> None:
        from hsmgate.hsm.pkcs11 import Pkcs11Partition

        try:
            self._token = Pkcs11Partition("approver", module_path=module, token_label=token_label, pin=pin,
                                          pool_size=1)
        except HsmError as exc:
            raise KeyStoreError(f"cannot open the PKCS#11 token '{token_label}': {exc}") from None
        self.label = label
        self.certificate = None
        self.public_key = b""

    def open(self) -> TokenKey:
        """Find the key on the token."""
        try:
            info = self._token.get(self.label)
        except HsmError as exc:
            self.close()
            raise KeyStoreError(f"no approver key '{self.label}' on the token ({exc}): register first") from None
        self.public_key = info.public_key or b""
        return self

    def store(self, key: rsa.RSAPrivateKey) -> TokenKey:
        """Import ``key`` (sign only, sensitive, not extractable) under this label."""
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            if self.label in self._token.list_labels():
                raise KeyStoreError(f"the token has a key '{self.label}' already: choose another --key-label")
            self._token.import_key(self.label, key_type=KeyType.RSA, private_key=der, attributes=KeyAttributes(
                sign=True, sensitive=True, extractable=False, modifiable=False, destroyable=True))
        except HsmError as exc:
            raise KeyStoreError(f"the token refused the key: {exc}") from None
        return self.open()

    def sign(self, data: bytes) -> bytes:
        try:
            return self._token.sign(self.label, SIGNATURE, data)
        except HsmError as exc:
            raise KeyStoreError(f"the token cannot sign with '{self.label}': {exc}") from None

    def close(self) -> None:
        self._token.close()
