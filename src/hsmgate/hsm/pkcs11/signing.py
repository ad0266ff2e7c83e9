"""How a :class:`~hsmgate.hsm.base.SignMechanism` runs on a token: the route (:func:`plan_signature`) and the
encodings done here when a token offers only the raw mechanism (DigestInfo, EMSA-PSS).

The routes, best first: a hash-and-sign mechanism (CKM_SHA256_RSA_PKCS ...); the raw mechanism with the hash
computed here (CKM_RSA_PKCS with a DigestInfo, CKM_RSA_PKCS_PSS with PSS parameters, CKM_ECDSA, CKM_DSA); for
RSASSA-PSS last, CKM_RSA_X_509 with the EMSA-PSS block built here. The set of mechanisms with a route is the
backend's signing capability.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import struct
from dataclasses import dataclass
from enum import Enum

from pkcs11 import Mechanism

from hsmgate.hsm.base import HashAlg, InvalidInput, KeyType, SignMechanism, SignScheme
from hsmgate.hsm.pkcs11.mechanisms import HASHES, SCHEME_KEY_TYPES, UNHASHED_SCHEMES, M


class Encoding(Enum):
    """A block the backend builds before a raw RSA mechanism signs it."""

    DIGEST_INFO = "DigestInfo"
    """DER DigestInfo (RFC 8017 §9.2), signed with CKM_RSA_PKCS."""
    EMSA_PSS = "EMSA-PSS"
    """EMSA-PSS-ENCODE (RFC 8017 §9.1.1), signed with CKM_RSA_X_509."""


@dataclass(frozen=True, slots=True)
class SignPlan:
    """How one SignMechanism runs on a token."""

    mechanism: Mechanism
    """Given to C_SignInit."""
    param: bytes | None = None
    """Packed CK_RSA_PKCS_PSS_PARAMS, or None."""
    hash_here: bool = False
    """Hash the data with hashlib first."""
    encode: Encoding | None = None
    """Build this block here before signing; None: the token takes the data (or digest) as it is."""
    der: bool = False
    """The token returns raw r‖s; the caller gets a DER SEQUENCE {r, s}."""


@functools.lru_cache(maxsize=4096)
def plan_signature(mechs: frozenset[int], key_type: KeyType, m: SignMechanism) -> SignPlan | None:
    """The route for ``m`` with a ``key_type`` key on a token offering ``mechs``; None when it cannot run."""
    if SCHEME_KEY_TYPES.get(m.scheme) is not key_type or m.deterministic:
        return None
    if m.scheme in UNHASHED_SCHEMES:
        ckm = UNHASHED_SCHEMES[m.scheme]
        return SignPlan(ckm) if m.hash is None and not m.prehashed and ckm in mechs else None
    alg = hash_of(m)
    if alg is None:
        return None
    row, hash_here = HASHES[alg], not m.prehashed
    if m.scheme is SignScheme.RSA_PKCS1V15:
        if hash_here and row.rsa_pkcs in mechs:
            return SignPlan(row.rsa_pkcs)
        if M.RSA_PKCS not in mechs:
            return None
        return SignPlan(M.RSA_PKCS, hash_here=hash_here, encode=Encoding.DIGEST_INFO)
    if m.scheme is SignScheme.RSA_PSS:
        # packed here: python-pkcs11 0.10.1 builds PSS parameters only for the SHA-1/SHA-2 mechanisms
        param = struct.pack("LLL", row.digest, row.mgf, alg.digest_size)
        if hash_here and row.rsa_pss in mechs:
            return SignPlan(row.rsa_pss, param)
        if M.RSA_PKCS_PSS in mechs and (row.pss_param_ok or row.digest in mechs):
            return SignPlan(M.RSA_PKCS_PSS, param, hash_here)
        if M.RSA_X_509 not in mechs:
            return None
        return SignPlan(M.RSA_X_509, hash_here=hash_here, encode=Encoding.EMSA_PSS)
    raw, combined = (M.ECDSA, row.ecdsa) if m.scheme is SignScheme.ECDSA else (M.DSA, row.dsa)
    if raw in mechs:
        return SignPlan(raw, hash_here=hash_here, der=True)
    return SignPlan(combined, der=True) if hash_here and combined in mechs else None


def hash_of(m: SignMechanism) -> HashAlg | None:
    """The scheme's digest as a HashAlg (a PreHash of the same name equals it); None for SHAKE or none."""
    try:
        return HashAlg(m.hash) if m.hash is not None else None
    except ValueError:
        return None


def all_mechanisms(scheme: SignScheme) -> list[SignMechanism]:
    """Every SignMechanism of ``scheme`` worth planning: each hash, with and without prehashing."""
    if scheme in UNHASHED_SCHEMES:
        return [SignMechanism(scheme)]
    return [SignMechanism(scheme, h, pre) for h in HashAlg for pre in (False, True)]


def describe_mechanism(m: SignMechanism) -> str:
    """``m`` in words for messages: ``"ECDSA sha256 prehashed"``."""
    words = [m.scheme.value, m.hash.value if m.hash else "", "prehashed" if m.prehashed else "",
             "deterministic" if m.deterministic else ""]
    return " ".join(w for w in words if w)


def refuse_context(mechanism: SignMechanism, context: bytes | None) -> None:
    """InvalidInput for a context string: it belongs to ML-DSA / SLH-DSA, and binding none silently would
    mislead the caller."""
    if context:
        raise InvalidInput(f"{mechanism.scheme} takes no context string")


def digest_info(alg: HashAlg, digest: bytes) -> bytes:
    """DER DigestInfo (RFC 8017 §9.2) with NULL parameters."""
    oid = HASHES[alg].oid
    body = b"\x30" + bytes([len(oid) + 2]) + oid + b"\x05\x00" + b"\x04" + bytes([len(digest)]) + digest
    return b"\x30" + bytes([len(body)]) + body


def emsa_pss(m_hash: bytes, alg: HashAlg, modulus_bits: int) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 §9.1.1), MGF1 with the same hash, salt as long as the digest; left-padded
    to the modulus length for the raw RSA operation (CKM_RSA_X_509)."""
    h_len, em_bits = len(m_hash), modulus_bits - 1
    em_len = (em_bits + 7) // 8
    if em_len < 2 * h_len + 2:
        raise InvalidInput(f"a {modulus_bits}-bit RSA key is too small for RSASSA-PSS with {alg}")
    salt = secrets.token_bytes(h_len)
    h = hashlib.new(alg.value, b"\0" * 8 + m_hash + salt).digest()
    db = b"\0" * (em_len - 2 * h_len - 2) + b"\x01" + salt
    blocks = range(-(-len(db) // h_len))
    mask = b"".join(hashlib.new(alg.value, h + i.to_bytes(4, "big")).digest() for i in blocks)
    masked = bytearray(x ^ y for x, y in zip(db, mask, strict=False))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    return (bytes(masked) + h + b"\xbc").rjust((modulus_bits + 7) // 8, b"\0")
