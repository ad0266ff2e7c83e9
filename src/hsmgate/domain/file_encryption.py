"""File encryption (wave-2 reference §3): ``/v1/fileEncrypt`` and ``/v1/synchronousFileDecrypt``.

The TSB documents no container format; hsmgate's is ``hsm/file_container.py`` (version 1,
``docs/file-encryption.md``). Both directions need an EC P-384 key (curve OID 1.3.132.0.34) with the
``derive`` attribute, as the TSB's ``FileEncryptRequestDto`` asks for encryption; decryption asks the
same, since its private-key step is an ECDH derivation (``decrypt`` is not needed). Encryption uses
the key's public half only; decryption runs the ECDH and the KDF in the backend
(:meth:`~hsmgate.hsm.base.Partition.ecies_file_key`) and authenticates the whole container before
its first plaintext byte is released.

Errors: 613 for a key that is not EC P-384, 701 (``KEY_FUNCTION_NOT_PERMITTED``) for a key without
``derive``, 623 for a file that is not a version-1 container (magic, version, suite, chunk size,
ephemeral point, a length no container has), 410 for a container that does not authenticate
(wrong key, changed, reordered or truncated at a chunk boundary).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric import ec

from hsmgate.domain import errors
from hsmgate.domain.hsm_errors import KEY_FUNCTION_NOT_PERMITTED, translated
from hsmgate.domain.keys import key_info
from hsmgate.hsm import file_container, softcrypto
from hsmgate.hsm.base import KeyInfo, KeyType, Partition


class InvalidFileHeader(errors.TsbError):
    """623 ``res.error.invalid.file.header``: not a file container hsmgate can open."""

    code = 623


@dataclass(frozen=True, slots=True)
class StreamedFile:
    """A file answered piece by piece: its exact length in bytes and its pieces, in order."""

    length: int
    chunks: Iterator[bytes]


class FileEncryptionService:
    """Encrypts files to, and decrypts them with, the EC P-384 keys of one partition."""

    def __init__(self, partition: Partition) -> None:
        self.partition = partition

    def encrypt(self, *, label: str, source: BinaryIO, size: int) -> StreamedFile:
        """The container of the ``size`` bytes in ``source`` for the key ``label`` (public half)."""
        info = self._file_key(label)
        if info.public_key is None:
            raise errors.InvalidKeyType(f"key '{label}' has no public key to encrypt to")
        recipient = softcrypto.load_spki(info.public_key)
        if not isinstance(recipient, ec.EllipticCurvePublicKey):
            raise errors.InvalidKeyType(f"key '{label}' has no EC public key")
        with translated():
            chunks = file_container.seal(recipient, source, size)
        return StreamedFile(file_container.encrypted_size(size), chunks)

    def decrypt(self, *, label: str, source: BinaryIO, size: int) -> StreamedFile:
        """The plaintext of the container of ``size`` bytes in the seekable ``source``, opened with
        the private key ``label``; the whole container is authenticated before this returns."""
        self._file_key(label)

        def derive(header: file_container.Header) -> bytes:
            return self.partition.ecies_file_key(label, header.ephemeral_point, header.raw)

        try:
            with translated():
                length, chunks = file_container.open_file(derive, source, size)
        except errors.InvalidPayload as exc:
            raise InvalidFileHeader(str(exc)) from None
        return StreamedFile(length, chunks)

    def _file_key(self, label: str) -> KeyInfo:
        """The key ``label`` when it can encrypt files: 650, 613 (not EC P-384), 701 (no derive)."""
        info = key_info(self.partition, label)
        if info.key_type is not KeyType.EC or info.curve_oid != file_container.CURVE_OID:
            curve = f" on curve {info.curve_oid}" if info.curve_oid else ""
            raise errors.InvalidKeyType(f"key '{label}' is {info.key_type}{curve}: file encryption needs an EC "
                                        f"P-384 key (curveOid {file_container.CURVE_OID}) with the derive attribute")
        if not info.attributes.derive:
            raise errors.TsbError(f"{KEY_FUNCTION_NOT_PERMITTED}: key '{label}' does not have the derive "
                                  "attribute file encryption needs", code=701, status=400)
        return info
