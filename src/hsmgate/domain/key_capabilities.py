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
    CURVES,
    KEY_ALGORITHMS,
    SIGNATURE_ALGORITHMS,
    WRAP_METHODS,
    SignatureAlgorithm,
)
from hsmgate.hsm.base import Capabilities, HashAlg, KeyInfo, KeyType

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


def _can_sign(row: SignatureAlgorithm, key_type: KeyType, curve_oid: str | None, capabilities: Capabilities) -> bool:
    """Whether some payload the row accepts reaches a mechanism the backend has for such a key."""
    if not row.accepts(key_type) or (row.curves and curve_oid not in row.curves):
        return False
    for length in _PAYLOAD_LENGTHS:
        prepared = row.mechanism_for(bytes(length))
        if prepared is not None and capabilities.can_sign(key_type, prepared[0]):
            return True
    return False


def signature_algorithms(key_type: KeyType, curve_oid: str | None, capabilities: Capabilities) -> tuple[str, ...]:
    """The ``signatureAlgorithm`` values a backend of ``capabilities`` executes for a key of ``key_type``
    (on ``curve_oid``), in table order."""
    return tuple(name for name, row in SIGNATURE_ALGORITHMS.items()
                 if _can_sign(row, key_type, curve_oid, capabilities))


def key_capabilities(info: KeyInfo, capabilities: Capabilities) -> KeyCapabilities:
    """What ``info``'s key can do with a backend of ``capabilities`` (module text)."""
    key_type = info.key_type
    return KeyCapabilities(
        label=info.label, backend=capabilities.backend,
        signature_algorithms=signature_algorithms(key_type, info.curve_oid, capabilities),
        cipher_algorithms=tuple(name for name, row in CIPHER_ALGORITHMS.items()
                                if row.key_type is key_type and capabilities.can_encrypt(key_type, row.mechanism())),
        wrap_methods=tuple(name for name, row in WRAP_METHODS.items()
                           if key_type in row.wrapping_key_types and capabilities.can_wrap(key_type, row.mechanism)),
        hmac=key_type in capabilities.hmac,
        decapsulate=key_type in capabilities.kem,
    )


def _curve_order(oid: str) -> tuple[int, str]:
    """Curves in the order of the curve table, unknown ones last."""
    return (list(CURVES).index(oid) if oid in CURVES else len(CURVES), oid)


@dataclass(frozen=True, slots=True)
class AlgorithmOffer:
    """What a backend offers for one ``POST /v1/key`` ``algorithm``: the key sizes (bits) or curves it can
    generate, and the ``signatureAlgorithm`` values it runs with such keys (on any of those curves)."""

    algorithm: str
    generates: tuple[str, ...]
    signature_algorithms: tuple[str, ...]


def backend_offer(capabilities: Capabilities) -> list[AlgorithmOffer]:
    """Per creatable key algorithm, in the order of the key algorithm table (``hsmgate pkcs11 list``)."""
    offers = []
    for name, row in KEY_ALGORITHMS.items():
        specs = capabilities.key_specs.get(row.key_type)
        if specs is None:
            continue
        curves = sorted((str(s) for s in specs if isinstance(s, str)), key=_curve_order)
        sizes = sorted(s for s in specs if isinstance(s, int))
        signing = {a for curve in (curves or [None]) for a in signature_algorithms(row.key_type, curve, capabilities)}
        offers.append(AlgorithmOffer(
            algorithm=name,
            generates=tuple(CURVES[c].name if c in CURVES else c for c in curves) + tuple(str(s) for s in sizes),
            signature_algorithms=tuple(a for a in SIGNATURE_ALGORITHMS if a in signing)))
    return offers
