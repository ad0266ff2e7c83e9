"""BLS signatures on BLS12-381 for the soft token, on py-ecc (the Ethereum Foundation's reference
implementation, used by the consensus-spec tests).

Ciphersuite ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` (draft-irtf-cfrg-bls-signature, "proof
of possession"; Ethereum's consensus layer): public keys in G1 (48 bytes compressed), signatures in
G2 (96 bytes compressed), messages hashed to G2 with SSWU. The reference says the Primus signs
"according with ETH 2.0"; the suite string itself is INFERRED there and chosen here.

Encodings (hsmgate's choice; the TSB documents none):

* sealed material: the 32-byte secret key, big-endian (what ``AES_WRAP_BLS`` / ``AES_WRAP_PAD_BLS``
  wrap, too);
* public key: SubjectPublicKeyInfo with algorithm OID 1.3.6.1.4.1.44668.5.3.1.1 (the TSB's BLS
  algorithm OID) and no parameters, the BIT STRING holding the 48-byte compressed G1 point;
* signature: the 96-byte compressed G2 point.

py-ecc is pure Python: about 0.2 s per signature and 0.7 s per verification on this machine.
"""

from __future__ import annotations

import secrets

from asn1crypto import core
from py_ecc.bls import G2ProofOfPossession as _Suite

from hsmgate.hsm.base import InvalidInput

#: The TSB's BLS algorithm OID (reference wave 2 §6.1).
BLS_OID = "1.3.6.1.4.1.44668.5.3.1.1"
SECRET_SIZE = 32
PUBLIC_KEY_SIZE = 48
SIGNATURE_SIZE = 96
_CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001


class _AlgorithmIdentifier(core.Sequence):
    _fields = [("algorithm", core.ObjectIdentifier)]  # noqa: RUF012 (asn1crypto declares fields so)


class _PublicKeyInfo(core.Sequence):
    _fields = [("algorithm", _AlgorithmIdentifier), ("public_key", core.OctetBitString)]  # noqa: RUF012 (asn1crypto declares fields so)


def generate() -> tuple[bytes, bytes]:
    """(sealed material, SPKI) of a new key: KeyGen (draft §2.3) from 32 fresh random bytes."""
    secret = _Suite.KeyGen(secrets.token_bytes(32))
    return secret.to_bytes(SECRET_SIZE, "big"), spki(secret)


def load(material: bytes) -> int:
    """The secret scalar of sealed (or unwrapped) material; InvalidInput when it is none."""
    if len(material) != SECRET_SIZE:
        raise InvalidInput(f"a BLS secret key has {SECRET_SIZE} bytes, not {len(material)}")
    secret = int.from_bytes(material, "big")
    if not 0 < secret < _CURVE_ORDER:
        raise InvalidInput("the BLS secret key is not a scalar of BLS12-381")
    return secret


def spki(secret: int) -> bytes:
    return _PublicKeyInfo({"algorithm": {"algorithm": BLS_OID}, "public_key": bytes(_Suite.SkToPk(secret))}).dump()


def public_key_bytes(spki_der: bytes) -> bytes:
    """The 48-byte compressed G1 point of an SPKI made by :func:`spki`."""
    info = _PublicKeyInfo.load(spki_der)
    if info["algorithm"]["algorithm"].dotted != BLS_OID:
        raise InvalidInput("not a BLS public key")
    raw = info["public_key"].native
    if len(raw) != PUBLIC_KEY_SIZE:
        raise InvalidInput("a BLS public key has 48 bytes")
    return bytes(raw)


def sign(secret: int, message: bytes) -> bytes:
    return bytes(_Suite.Sign(secret, message))


def verify(spki_der: bytes, message: bytes, signature: bytes) -> bool:
    """Verification under the POP suite; malformed signatures are simply invalid."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        return bool(_Suite.Verify(public_key_bytes(spki_der), message, signature))
    except (ValueError, TypeError, InvalidInput):
        return False
