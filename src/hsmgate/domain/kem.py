"""ML-KEM key encapsulation (FIPS 203): encapsulate to a public key, decapsulate inside the backend.

Encapsulation needs only public material, so hsmgate does it in software (``hsm.softpq``, like
signature verification with a public key) for a ``publicKey`` the caller sends or for the public
half of a key of the partition. Decapsulation runs in the backend (``Partition.decapsulate``) and
needs the key's ``decrypt``, ``derive`` or ``unwrap`` attribute (the TSB's own client decapsulates
with keys that have only ``unwrap``), synchronously and as an approved SKA request alike.
"""

from __future__ import annotations

from hsmgate.domain import errors
from hsmgate.domain.algorithms import KEY_ALGORITHM_BY_OID, ML_KEM_KEY_TYPES
from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.keys import key_info
from hsmgate.hsm import softpq
from hsmgate.hsm.base import InvalidInput, KeyType, Partition


def _spki_algorithm_oid(der: bytes) -> str | None:
    """The algorithm OID of a DER SubjectPublicKeyInfo, or None when ``der`` is not one."""
    def read(buf: bytes, pos: int, tag: int) -> tuple[int, int] | None:
        if pos + 2 > len(buf) or buf[pos] != tag:
            return None
        length, pos = buf[pos + 1], pos + 2
        if length & 0x80:
            n = length & 0x7F
            if n == 0 or n > 3 or pos + n > len(buf):
                return None
            length, pos = int.from_bytes(buf[pos:pos + n], "big"), pos + n
        return (pos, length) if pos + length <= len(buf) else None

    outer = read(der, 0, 0x30)
    if outer is None or outer[0] + outer[1] != len(der):
        return None
    algorithm = read(der, outer[0], 0x30)
    if algorithm is None:
        return None
    oid = read(der, algorithm[0], 0x06)
    if oid is None or oid[1] == 0:
        return None
    body = der[oid[0]:oid[0] + oid[1]]
    arcs, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))


class KemService:
    """ML-KEM operations on one partition."""

    def __init__(self, partition: Partition) -> None:
        self.partition = partition

    def encapsulate(self, *, public_key: bytes | None = None, label: str | None = None) -> tuple[bytes, bytes]:
        """(ciphertext, shared secret) for ``public_key`` (DER SPKI) or the key named ``label``."""
        if (public_key is None) == (label is None):
            raise errors.ValidationFailed("exactly one of 'publicKey' and 'keyName' must be given")
        if label is not None:
            info = key_info(self.partition, label)
            if info.key_type not in ML_KEM_KEY_TYPES or info.public_key is None:
                raise errors.AlgorithmNotSupportedByKey(
                    f"ML-KEM encapsulation is not supported by key '{label}' ({info.key_type})")
            key_type, spki = info.key_type, info.public_key
        else:
            assert public_key is not None
            oid = _spki_algorithm_oid(public_key)
            if oid is None:
                raise errors.ValidationFailed("'publicKey' must be a DER SubjectPublicKeyInfo (base64)")
            row = KEY_ALGORITHM_BY_OID.get(oid)
            if row is None or row.key_type not in ML_KEM_KEY_TYPES:
                raise errors.InvalidKeyType(
                    f"'publicKey' is a {row.wire_name if row else oid} key, not ML-KEM-512/768/1024")
            key_type, spki = row.key_type, public_key
        try:
            return softpq.encapsulate(KeyType(key_type), spki)
        except InvalidInput as exc:
            raise errors.ValidationFailed(f"'publicKey': {exc}") from None

    def check_decapsulation(self, *, label: str, ciphertext: bytes) -> None:
        """Refuse what no approval could make work, before approvals are asked for (an asynchronous
        request) or the backend is called: 650 for a missing key, 607 for a key that is not ML-KEM,
        611 when the backend cannot decapsulate it, 612 for a ciphertext of the wrong size. The
        key's attributes are the backend's to check."""
        info = key_info(self.partition, label)
        if info.key_type not in ML_KEM_KEY_TYPES:
            raise errors.AlgorithmNotSupportedByKey(
                f"ML-KEM decapsulation is not supported by key '{label}' ({info.key_type})")
        capabilities = self.partition.capabilities()
        if info.key_type not in capabilities.kem:
            raise errors.UnsupportedOperation(
                f"{info.key_type} decapsulation is not supported by the {capabilities.backend} backend")
        size = softpq.parameter_set(info.key_type).ciphertext_size
        if len(ciphertext) != size:
            raise errors.InvalidPayload(f"'ciphertext': an {info.key_type} ciphertext has {size} bytes, "
                                        f"not {len(ciphertext)}")

    def decapsulate(self, *, label: str, ciphertext: bytes) -> bytes:
        """The shared secret of ``ciphertext``, decapsulated by the backend with key ``label``."""
        self.check_decapsulation(label=label, ciphertext=ciphertext)
        with translated():
            return self.partition.decapsulate(label, ciphertext)
