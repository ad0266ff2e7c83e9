"""What a key can do on the token that holds it: the ``signatureAlgorithm``, ``cipherAlgorithm`` and
``wrapMethod`` values the backend can execute for a key of its type (and curve), and whether it can
compute an HMAC or decapsulate with it.

It is read from the backend's declared capabilities (``hsm/base.py`` :class:`Capabilities`), which a
PKCS#11 backend derives from its token's mechanisms (``hsm/pkcs11/partition.py``): the same
declaration the operations consult before they refuse with 611 / 613. So what is listed here is what
the operations accept, on this token, for a key of this type; the key's own attributes (``sign``,
``decrypt``, …) and its policy still apply, and are in the key's attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsmgate.domain.algorithms import (
    CIPHER_ALGORITHMS,
    SIGNATURE_ALGORITHMS,
    WRAP_METHODS,
    SignatureAlgorithm,
)
from hsmgate.hsm.base import Capabilities, HashAlg, KeyInfo

#: Payload lengths that reach every payload form of the signature table: any message, each digest
#: size, ML-DSA's μ (64), BIP-340's 32 bytes.
_PAYLOAD_LENGTHS = tuple(sorted({1, 32, 64} | {h.digest_size for h in HashAlg}))


@dataclass(frozen=True, slots=True)
class KeyCapabilities:
    """The wire values a key can be used with on its token (module text), each in table order."""

    label: str
    backend: str
    signature_algorithms: tuple[str, ...]
    cipher_algorithms: tuple[str, ...]
    wrap_methods: tuple[str, ...]
    hmac: bool
    decapsulate: bool


def _can_sign(row: SignatureAlgorithm, info: KeyInfo, capabilities: Capabilities) -> bool:
    """Whether some payload the row accepts reaches a mechanism the backend has for the key."""
    if not row.accepts(info.key_type) or (row.curves and info.curve_oid not in row.curves):
        return False
    for length in _PAYLOAD_LENGTHS:
        prepared = row.mechanism_for(bytes(length))
        if prepared is not None and capabilities.can_sign(info.key_type, prepared[0]):
            return True
    return False


def key_capabilities(info: KeyInfo, capabilities: Capabilities) -> KeyCapabilities:
    """What ``info``'s key can do with a backend of ``capabilities`` (module text)."""
    key_type = info.key_type
    return KeyCapabilities(
        label=info.label, backend=capabilities.backend,
        signature_algorithms=tuple(name for name, row in SIGNATURE_ALGORITHMS.items()
                                   if _can_sign(row, info, capabilities)),
        cipher_algorithms=tuple(name for name, row in CIPHER_ALGORITHMS.items()
                                if row.key_type is key_type and capabilities.can_encrypt(key_type, row.mechanism())),
        wrap_methods=tuple(name for name, row in WRAP_METHODS.items()
                           if key_type in row.wrapping_key_types and capabilities.can_wrap(key_type, row.mechanism)),
        hmac=key_type in capabilities.hmac,
        decapsulate=key_type in capabilities.kem,
    )
