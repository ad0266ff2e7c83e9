"""BIP-340 Schnorr signatures and BIP-341 Taproot key tweaks for the soft token, on coincurve
(libsecp256k1's ``schnorrsig`` module).

hsmgate's own arithmetic here is the BIP-341 tweak of the secret key (``taproot_tweak_seckey``):
negate d when d·G has an odd y, add t modulo n. The tagged hash is BIP-340's:
``tagged_hash(tag, m) = SHA-256(SHA-256(tag) ‖ SHA-256(tag) ‖ m)``.
"""

from __future__ import annotations

import hashlib
import secrets

import coincurve
from cryptography.hazmat.primitives.asymmetric import ec

from hsmgate.hsm.base import InvalidInput, SchnorrOptions

#: The order n of secp256k1.
ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MESSAGE_SIZE = 32
SIGNATURE_SIZE = 64


def tagged_hash(tag: str, data: bytes) -> bytes:
    tag_digest = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(tag_digest + tag_digest + data).digest()


def signing_key(private: ec.EllipticCurvePrivateKey, options: SchnorrOptions) -> coincurve.PrivateKey:
    """The secp256k1 key that signs: the key itself, or its BIP-341 tweak (``SchnorrOptions``)."""
    if not isinstance(private.curve, ec.SECP256K1):
        raise InvalidInput(f"BIP-340 signatures need a secp256k1 key, not {private.curve.name}")
    d = private.private_numbers().private_value
    key = coincurve.PrivateKey.from_int(d)
    if options.tweak is None and options.merkle_root is None:
        return key
    point = key.public_key.format(compressed=True)
    if point[0] == 3:  # odd y: BIP-341 negates d so that the internal key is x(P) with an even y
        d = ORDER - d
    if options.tweak is not None:
        t = int.from_bytes(options.tweak, "big")
    else:
        t = int.from_bytes(tagged_hash("TapTweak", point[1:] + (options.merkle_root or b"")), "big")
    if t >= ORDER:
        raise InvalidInput("the Taproot tweak is not below the secp256k1 group order")
    tweaked = (d + t) % ORDER
    if tweaked == 0:
        raise InvalidInput("the Taproot tweak cancels the key")
    return coincurve.PrivateKey.from_int(tweaked)


def sign(key: coincurve.PrivateKey, message: bytes, aux_rand: bytes | None) -> bytes:
    """R.x ‖ s (64 bytes) of a 32-byte message; fresh random aux bytes when ``aux_rand`` is None."""
    if len(message) != MESSAGE_SIZE:
        raise InvalidInput(f"BIP-340 signs a {MESSAGE_SIZE}-byte message, not {len(message)} bytes")
    return bytes(key.sign_schnorr(message, aux_rand if aux_rand is not None else secrets.token_bytes(32)))


def verify(public: ec.EllipticCurvePublicKey, message: bytes, signature: bytes) -> bool:
    """BIP-340 verification against the x-only form of ``public``; malformed input is simply invalid."""
    if len(signature) != SIGNATURE_SIZE or len(message) != MESSAGE_SIZE:
        return False
    x = public.public_numbers().x.to_bytes(32, "big")
    try:
        return bool(coincurve.PublicKeyXOnly(x).verify(signature, message))
    except (ValueError, TypeError):
        return False
