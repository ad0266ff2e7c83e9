"""Software implementations of the base mechanisms on top of ``cryptography``.

Used by the software token for everything and by every backend for verification with a public
key (public material only). The one operation ``cryptography`` does not expose — the raw RSA
private operation behind ``NONEwithRSA`` — uses pycryptodome's blinded CRT implementation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.utils import CryptographyDeprecationWarning

from hsmgate.hsm.base import (
    HashAlg,
    InvalidInput,
    KeySpec,
    KeyType,
    SignMechanism,
    SignScheme,
    UnsupportedByBackend,
)

with warnings.catch_warnings():  # naming DSA warns; whoever imports this module first (warnings_filter.py)
    warnings.filterwarnings("ignore", message="DSA is deprecated", category=CryptographyDeprecationWarning)
    PrivateKey = (
        rsa.RSAPrivateKey | dsa.DSAPrivateKey | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
    )
    PublicKey = (
        rsa.RSAPublicKey | dsa.DSAPublicKey | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
    )

HASHES: dict[HashAlg, type[hashes.HashAlgorithm]] = {
    HashAlg.SHA1: hashes.SHA1,
    HashAlg.SHA224: hashes.SHA224,
    HashAlg.SHA256: hashes.SHA256,
    HashAlg.SHA384: hashes.SHA384,
    HashAlg.SHA512: hashes.SHA512,
    HashAlg.SHA3_224: hashes.SHA3_224,
    HashAlg.SHA3_256: hashes.SHA3_256,
    HashAlg.SHA3_384: hashes.SHA3_384,
    HashAlg.SHA3_512: hashes.SHA3_512,
}

#: Named curves ``cryptography`` can generate, by OID, with their field size in bits.
EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "1.3.132.0.33": (ec.SECP224R1, 224),
    "1.3.132.0.10": (ec.SECP256K1, 256),
    "1.2.840.10045.3.1.7": (ec.SECP256R1, 256),
    "1.3.132.0.34": (ec.SECP384R1, 384),
    "1.3.132.0.35": (ec.SECP521R1, 521),
    "1.3.36.3.3.2.8.1.1.7": (ec.BrainpoolP256R1, 256),
    "1.3.36.3.3.2.8.1.1.11": (ec.BrainpoolP384R1, 384),
    "1.3.36.3.3.2.8.1.1.13": (ec.BrainpoolP512R1, 512),
}
ED25519_OID = "1.3.101.112"
ED448_OID = "1.3.101.113"
ED_CURVES: dict[str, int] = {ED25519_OID: 255, ED448_OID: 448}
#: Sizes the soft token generates. 8192-bit RSA and 4096-bit DSA are left out on purpose: one
#: request would hold a worker for many seconds (a PKCS#11 token may still offer them).
RSA_SIZES = frozenset({1024, 2048, 3072, 4096})
DSA_SIZES = frozenset({1024, 2048, 3072})


def generate_private_key(spec: KeySpec) -> PrivateKey:
    """A new asymmetric private key for ``spec``; raises UnsupportedByBackend."""
    if spec.key_type is KeyType.RSA and spec.size in RSA_SIZES:
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
    if spec.key_type is KeyType.DSA and spec.size in DSA_SIZES:
        return dsa.generate_private_key(key_size=spec.size)
    if spec.key_type is KeyType.EC and spec.curve_oid in EC_CURVES:
        return ec.generate_private_key(EC_CURVES[spec.curve_oid][0]())
    if spec.key_type is KeyType.ED and spec.curve_oid == ED25519_OID:
        return ed25519.Ed25519PrivateKey.generate()
    if spec.key_type is KeyType.ED and spec.curve_oid == ED448_OID:
        return ed448.Ed448PrivateKey.generate()
    raise UnsupportedByBackend(f"cannot generate {spec.key_type} key with size {spec.size} / curve {spec.curve_oid}")


def spki_der(public_key: PublicKey) -> bytes:
    """DER SubjectPublicKeyInfo of a public key."""
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_spki(der: bytes) -> PublicKey:
    return serialization.load_der_public_key(der)  # type: ignore[return-value]


def key_type_of(key: PrivateKey | PublicKey) -> KeyType:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeyType.RSA
    if isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey):
        return KeyType.DSA
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return KeyType.EC
    return KeyType.ED


def _hash_for(mechanism: SignMechanism, data: bytes) -> hashes.HashAlgorithm | Prehashed:
    if mechanism.hash is None:
        raise InvalidInput(f"{mechanism.scheme} needs a hash")
    algorithm = HASHES[mechanism.hash]()
    if not mechanism.prehashed:
        return algorithm
    if len(data) != algorithm.digest_size:
        raise InvalidInput(
            f"payload must be a {mechanism.hash} digest of {algorithm.digest_size} bytes, got {len(data)} bytes"
        )
    return Prehashed(algorithm)


def _pss(mechanism: SignMechanism) -> padding.PSS:
    """PSS with MGF1 over the scheme's hash and a salt as long as the digest."""
    if mechanism.hash is None:
        raise InvalidInput("RSASSA-PSS needs a hash")
    return padding.PSS(mgf=padding.MGF1(HASHES[mechanism.hash]()), salt_length=mechanism.hash.digest_size)


def pkcs1_type1_block(data: bytes, modulus_bytes: int) -> bytes:
    """EMSA-PKCS1-v1_5 type-1 padding of ``data`` without DigestInfo (Java's NONEwithRSA)."""
    if len(data) > modulus_bytes - 11:
        raise InvalidInput(f"payload of {len(data)} bytes is too long for a {modulus_bytes * 8}-bit RSA key")
    return b"\x00\x01" + b"\xff" * (modulus_bytes - 3 - len(data)) + b"\x00" + data


def signer(key: PrivateKey, mechanism: SignMechanism, raw_rsa: object | None = None) -> Callable[[bytes], bytes]:
    """:func:`sign` with ``key`` and ``mechanism`` fixed, the key type, the scheme and (when it does
    not depend on the payload) the hash worked out once: a batch signs many payloads with them."""
    scheme = mechanism.scheme
    if scheme is SignScheme.EDDSA and isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key.sign
    if mechanism.hash is not None and not mechanism.prehashed:
        if scheme is SignScheme.ECDSA and isinstance(key, ec.EllipticCurvePrivateKey):
            ecdsa = ec.ECDSA(HASHES[mechanism.hash](), deterministic_signing=mechanism.deterministic)
            return lambda data: key.sign(data, ecdsa)
        if scheme is SignScheme.RSA_PSS and isinstance(key, rsa.RSAPrivateKey):
            pss, algorithm = _pss(mechanism), HASHES[mechanism.hash]()
            return lambda data: key.sign(data, pss, algorithm)
        if scheme is SignScheme.RSA_PKCS1V15 and isinstance(key, rsa.RSAPrivateKey):
            pkcs1, algorithm = padding.PKCS1v15(), HASHES[mechanism.hash]()
            return lambda data: key.sign(data, pkcs1, algorithm)
    return lambda data: sign(key, mechanism, data, raw_rsa)


def sign(key: PrivateKey, mechanism: SignMechanism, data: bytes, raw_rsa: object | None = None) -> bytes:
    """Sign with a ``cryptography`` private key. ``raw_rsa`` is a pycryptodome RSA key, needed only
    for ``RSA_PKCS1V15_RAW``."""
    scheme = mechanism.scheme
    if scheme is SignScheme.EDDSA and isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        if scheme is SignScheme.RSA_PKCS1V15:
            return key.sign(data, padding.PKCS1v15(), _hash_for(mechanism, data))
        if scheme is SignScheme.RSA_PSS:
            algorithm = _hash_for(mechanism, data)
            return key.sign(data, _pss(mechanism), algorithm)
        if scheme is SignScheme.RSA_PKCS1V15_RAW and raw_rsa is not None:
            size = (key.key_size + 7) // 8
            block = pkcs1_type1_block(data, size)
            return raw_rsa._decrypt_to_bytes(int.from_bytes(block, "big"))  # type: ignore[attr-defined]
    if isinstance(key, ec.EllipticCurvePrivateKey) and scheme is SignScheme.ECDSA:
        return key.sign(data, ec.ECDSA(_hash_for(mechanism, data), deterministic_signing=mechanism.deterministic))
    if isinstance(key, dsa.DSAPrivateKey) and scheme is SignScheme.DSA and not mechanism.deterministic:
        return key.sign(data, _hash_for(mechanism, data))
    raise UnsupportedByBackend(f"{scheme} is not available for a {key_type_of(key)} key")


def verify(public_key: PublicKey, mechanism: SignMechanism, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` (encoded as :func:`sign` returns it) is valid."""
    scheme = mechanism.scheme
    try:
        if scheme is SignScheme.EDDSA and isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(signature, data)
            return True
        if isinstance(public_key, rsa.RSAPublicKey):
            if scheme is SignScheme.RSA_PKCS1V15:
                public_key.verify(signature, data, padding.PKCS1v15(), _hash_for(mechanism, data))
                return True
            if scheme is SignScheme.RSA_PSS:
                algorithm = _hash_for(mechanism, data)
                public_key.verify(signature, data, _pss(mechanism), algorithm)
                return True
            if scheme is SignScheme.RSA_PKCS1V15_RAW:
                return public_key.recover_data_from_signature(signature, padding.PKCS1v15(), None) == data
        if isinstance(public_key, ec.EllipticCurvePublicKey) and scheme is SignScheme.ECDSA:
            public_key.verify(signature, data, ec.ECDSA(_hash_for(mechanism, data)))
            return True
        if isinstance(public_key, dsa.DSAPublicKey) and scheme is SignScheme.DSA:
            public_key.verify(signature, data, _hash_for(mechanism, data))
            return True
    except InvalidSignature:
        return False
    except ValueError:  # malformed signature encoding
        return False
    raise UnsupportedByBackend(f"{scheme} is not available for a {key_type_of(public_key)} key")


def sign_mechanisms(key_type: KeyType) -> frozenset[SignMechanism]:
    """Every mechanism :func:`sign` implements for ``key_type``."""
    out: set[SignMechanism] = set()
    both = (False, True)
    if key_type is KeyType.RSA:
        for h in HashAlg:
            for pre in both:
                out.add(SignMechanism(SignScheme.RSA_PKCS1V15, h, pre))
                out.add(SignMechanism(SignScheme.RSA_PSS, h, pre))
        out.add(SignMechanism(SignScheme.RSA_PKCS1V15_RAW))
    elif key_type is KeyType.EC:
        for h in HashAlg:
            for pre in both:
                out.add(SignMechanism(SignScheme.ECDSA, h, pre))
                out.add(SignMechanism(SignScheme.ECDSA, h, pre, deterministic=True))
    elif key_type is KeyType.DSA:
        for h in HashAlg:
            for pre in both:
                out.add(SignMechanism(SignScheme.DSA, h, pre))
    elif key_type is KeyType.ED:
        out.add(SignMechanism(SignScheme.EDDSA))
    return frozenset(out)
