"""Mechanism and key-type tables of the PKCS#11 backend: hashes, signature schemes, HMAC and key generation.

Each row says how one of our values (:mod:`hsmgate.hsm.base`) is spelled in PKCS#11. What a token really
offers is read from its mechanism list (``Pkcs11Partition._read_mechanisms``); these tables only say what to
look for. The sizes offered as capabilities (:data:`RSA_SIZES` ...) are our choice, not the standard's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from pkcs11 import MGF, Mechanism
from pkcs11 import KeyType as CKK

from hsmgate.hsm.base import HashAlg, KeyType, SignScheme

M = Mechanism
"""Short name of python-pkcs11's ``Mechanism`` enum (``M.RSA_PKCS``)."""

CKM_CAMELLIA_KEY_GEN = M(0x550)
"""CKM_CAMELLIA_KEY_GEN: python-pkcs11 names it ``_CAMELLIA_KEY_GEN``, with the underscore of a historic
member."""


def ckm_name(mechanism: int) -> str:
    """The spec's ``CKM_`` name of ``mechanism`` (``CKM_DES_KEY_GEN``: python-pkcs11 names historic
    mechanisms with a leading underscore, ``_DES_KEY_GEN``), or ``CKM_0x...`` for a number python-pkcs11
    does not know."""
    try:
        return "CKM_" + Mechanism(mechanism).name.lstrip("_")
    except ValueError:
        return f"CKM_0x{mechanism:X}"


# ------------------------------------------------------------------------------------------------ hashes
@dataclass(frozen=True, slots=True)
class HashRow:
    """How one hash is named in the PKCS#11 mechanisms that use it."""

    oid: bytes
    """DER OBJECT IDENTIFIER of the hash, for a DigestInfo (RFC 8017 §9.2)."""
    digest: Mechanism
    """The digest mechanism: ``hashAlg`` of CK_RSA_PKCS_PSS_PARAMS and CK_RSA_PKCS_OAEP_PARAMS."""
    mgf: MGF
    """MGF1 with this hash."""
    rsa_pkcs: Mechanism
    """Hash-and-sign PKCS#1 v1.5 (CKM_SHA256_RSA_PKCS ...)."""
    rsa_pss: Mechanism
    """Hash-and-sign RSASSA-PSS (CKM_SHA256_RSA_PKCS_PSS ...)."""
    ecdsa: Mechanism | None
    """Hash-and-sign ECDSA; None for SHA-3 (PKCS#11 2.40 defines none)."""
    dsa: Mechanism | None
    """Hash-and-sign DSA; None for SHA-3."""
    pss_param_ok: bool
    """SHA-1 / SHA-2: every PKCS#11 2.40 module takes the hash as the PSS ``hashAlg`` even without listing
    the digest mechanism."""


def _hash_row(name: str, oid: str) -> HashRow:
    """The row of hash ``name`` in python-pkcs11's spelling (SHA1, SHA256, SHA3_256 ...)."""
    sha2 = not name.startswith("SHA3")
    return HashRow(bytes.fromhex(oid), Mechanism["SHA_1" if name == "SHA1" else name], MGF[name],
                   Mechanism[f"{name}_RSA_PKCS"], Mechanism[f"{name}_RSA_PKCS_PSS"],
                   Mechanism[f"ECDSA_{name}"] if sha2 else None,
                   Mechanism[f"DSA_{name}"] if sha2 else None, sha2)


_NIST = "0609608648016503040"  # 2.16.840.1.101.3.4.2.x
#: Every hash the backend signs with, encrypts with (OAEP) or puts into a DigestInfo.
HASHES: dict[HashAlg, HashRow] = {
    HashAlg.SHA1: _hash_row("SHA1", "06052b0e03021a"),
    HashAlg.SHA224: _hash_row("SHA224", _NIST + "204"),
    HashAlg.SHA256: _hash_row("SHA256", _NIST + "201"),
    HashAlg.SHA384: _hash_row("SHA384", _NIST + "202"),
    HashAlg.SHA512: _hash_row("SHA512", _NIST + "203"),
    HashAlg.SHA3_224: _hash_row("SHA3_224", _NIST + "207"),
    HashAlg.SHA3_256: _hash_row("SHA3_256", _NIST + "208"),
    HashAlg.SHA3_384: _hash_row("SHA3_384", _NIST + "209"),
    HashAlg.SHA3_512: _hash_row("SHA3_512", _NIST + "20a"),
}

# ----------------------------------------------------------------------------------------- signature schemes
#: The key type each signature scheme needs; a scheme not listed is not offered by this backend.
SCHEME_KEY_TYPES: dict[SignScheme, KeyType] = {
    SignScheme.RSA_PKCS1V15: KeyType.RSA, SignScheme.RSA_PKCS1V15_RAW: KeyType.RSA,
    SignScheme.RSA_PSS: KeyType.RSA, SignScheme.DSA: KeyType.DSA, SignScheme.ECDSA: KeyType.EC,
    SignScheme.EDDSA: KeyType.ED,
}
#: Schemes that take no hash, with the one mechanism that runs them.
UNHASHED_SCHEMES: dict[SignScheme, Mechanism] = {SignScheme.RSA_PKCS1V15_RAW: M.RSA_PKCS,
                                                 SignScheme.EDDSA: M.EDDSA}


# ---------------------------------------------------------------------------------------------------- HMAC
class HmacRow(NamedTuple):
    """How an HMAC key type of ours exists on a token."""

    hash: HashAlg
    mechanism: Mechanism
    """The HMAC mechanism (CKM_SHA256_HMAC ...), also stored in the key's CKA_ALLOWED_MECHANISMS."""
    dedicated_type: CKK
    """The hash-specific key type (CKK_SHA256_HMAC ...). Keys are made as CKK_GENERIC_SECRET (SoftHSM2 stores
    a requested dedicated type as generic secret anyway); a key of this type made elsewhere is read too."""


#: Our HMAC key types.
HMAC_KEYS: dict[KeyType, HmacRow] = {
    KeyType.HMAC_SHA1: HmacRow(HashAlg.SHA1, M.SHA_1_HMAC, CKK.SHA_1_HMAC),
    KeyType.HMAC_SHA224: HmacRow(HashAlg.SHA224, M.SHA224_HMAC, CKK.SHA224_HMAC),
    KeyType.HMAC_SHA256: HmacRow(HashAlg.SHA256, M.SHA256_HMAC, CKK.SHA256_HMAC),
    KeyType.HMAC_SHA384: HmacRow(HashAlg.SHA384, M.SHA384_HMAC, CKK.SHA384_HMAC),
    KeyType.HMAC_SHA512: HmacRow(HashAlg.SHA512, M.SHA512_HMAC, CKK.SHA512_HMAC),
}


# ---------------------------------------------------------------------------------------------- key types
class Generation(NamedTuple):
    """How a key of one of our types is generated on a token."""

    key_type: CKK
    """CKA_KEY_TYPE of the new key."""
    mechanism: Mechanism
    """C_GenerateKey / C_GenerateKeyPair mechanism; its CK_MECHANISM_INFO range bounds the sizes offered."""
    pair: bool
    """True: a key pair (C_GenerateKeyPair); False: a secret key."""


#: Our key types the backend can generate.
GENERATION: dict[KeyType, Generation] = {
    KeyType.RSA: Generation(CKK.RSA, M.RSA_PKCS_KEY_PAIR_GEN, True),
    KeyType.DSA: Generation(CKK.DSA, M.DSA_KEY_PAIR_GEN, True),
    KeyType.EC: Generation(CKK.EC, M.EC_KEY_PAIR_GEN, True),
    KeyType.ED: Generation(CKK.EC_EDWARDS, M.EC_EDWARDS_KEY_PAIR_GEN, True),
    KeyType.AES: Generation(CKK.AES, M.AES_KEY_GEN, False),
    KeyType.TDEA: Generation(CKK.DES3, M.DES3_KEY_GEN, False),
    KeyType.CAMELLIA: Generation(CKK.CAMELLIA, CKM_CAMELLIA_KEY_GEN, False),
    **{t: Generation(CKK.GENERIC_SECRET, M.GENERIC_SECRET_KEY_GEN, False) for t in HMAC_KEYS},
}

CKK_CHACHA20 = 0x33
"""CKK_CHACHA20 (PKCS#11 3.0), which python-pkcs11 0.10 does not name."""

#: CKA_KEY_TYPE -> our key type. A CKK_GENERIC_SECRET is an HMAC key whose hash
#: :func:`hsmgate.hsm.pkcs11.keyobjects.hmac_type` finds.
KEY_TYPES: dict[int, KeyType] = {
    CKK.RSA: KeyType.RSA, CKK.DSA: KeyType.DSA, CKK.EC: KeyType.EC, CKK.EC_EDWARDS: KeyType.ED,
    CKK.AES: KeyType.AES, CKK.DES3: KeyType.TDEA, CKK.CAMELLIA: KeyType.CAMELLIA,
    CKK_CHACHA20: KeyType.CHACHA20,
    **{row.dedicated_type: t for t, row in HMAC_KEYS.items()},
}

#: RSA modulus sizes (bits) declared as capabilities when the token's range allows them.
RSA_SIZES: tuple[int, ...] = (2048, 3072, 4096)
#: DSA prime sizes (bits) declared as capabilities when the token's range allows them.
DSA_SIZES: tuple[int, ...] = (1024, 2048, 3072)
#: AES and Camellia key sizes (bits).
AES_SIZES: tuple[int, ...] = (128, 192, 256)
#: Bits of secret keys whose type fixes the length, so tokens may omit CKA_VALUE_LEN.
FIXED_SECRET_SIZES: dict[KeyType, int] = {KeyType.TDEA: 192, KeyType.CHACHA20: 256}
