"""Tables of the PKCS#11 backend: CKR codes to base.py errors, hashes, key types, attributes, sign routes,
and helpers that read key objects."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import struct
from dataclasses import dataclass
from typing import Any, TypeVar

import pkcs11
from asn1crypto.core import ObjectIdentifier, OctetString, PrintableString
from asn1crypto.core import load as asn1_load
from cryptography.hazmat.primitives.asymmetric import dsa, ed448, ed25519, rsa
from pkcs11 import MGF, Attribute, Mechanism
from pkcs11 import KeyType as CKK
from pkcs11.attributes import AttributeMapper
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_ec_public_key

from hsmgate.hsm import softcrypto
from hsmgate.hsm.base import (
    BackendUnavailable,
    HashAlg,
    HsmError,
    InvalidInput,
    KeyNotFound,
    KeyType,
    OperationNotPermitted,
    SignMechanism,
    SignScheme,
    UnsupportedByBackend,
)

T = TypeVar("T")
M = Mechanism

CKF_OS_LOCKING_OK = 0x2
CKU_USER = 1
CKR_OK, CKR_USER_ALREADY_LOGGED_IN, CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x0, 0x100, 0x191
#: Codes python-pkcs11 does not name, and the answers of C_Login.
_CKR_CODES = {0x05: "CKR_GENERAL_ERROR", 0x0A: "CKR_CANT_LOCK", 0x1B: "CKR_ACTION_PROHIBITED",
              0x30: "CKR_DEVICE_ERROR", 0x32: "CKR_DEVICE_REMOVED", 0x68: "CKR_KEY_FUNCTION_NOT_PERMITTED",
              0xA0: "CKR_PIN_INCORRECT", 0xA1: "CKR_PIN_INVALID", 0xA2: "CKR_PIN_LEN_RANGE",
              0xA3: "CKR_PIN_EXPIRED", 0xA4: "CKR_PIN_LOCKED", 0xB3: "CKR_SESSION_HANDLE_INVALID",
              0xE0: "CKR_TOKEN_NOT_PRESENT", 0x102: "CKR_USER_PIN_NOT_INITIALIZED",
              0x140: "CKR_CURVE_NOT_SUPPORTED", 0x190: "CKR_CRYPTOKI_NOT_INITIALIZED"}

# ------------------------------------------------------------------------------------------------ error table
_SESSION, _TOKEN, _MODULE = "session", "token", "module"
_PIN_REFUSED = ("CKR_PIN_INCORRECT", "CKR_PIN_INVALID", "CKR_PIN_LEN_RANGE", "CKR_PIN_EXPIRED",
                "CKR_PIN_LOCKED", "CKR_USER_PIN_NOT_INITIALIZED")
_GONE = (BackendUnavailable, "the token is not reachable", _TOKEN)
_STALE = (BackendUnavailable, "the session was lost", _SESSION)
_REFUSED = (UnsupportedByBackend, "the token refused the key template", None)
_FORBIDDEN = (OperationNotPermitted, "the key's attributes forbid it", None)
#: CKR name -> (exception, what it means, recovery: new session / drop the token's sessions / re-initialise).
_CKR: dict[str, tuple[type[HsmError], str, str | None]] = {
    "CKR_NO_SUCH_KEY": (KeyNotFound, "no such key", None),
    "CKR_OBJECT_HANDLE_INVALID": (KeyNotFound, "the key was removed meanwhile", None),
    "CKR_KEY_HANDLE_INVALID": (KeyNotFound, "the key was removed meanwhile", None),
    "CKR_MECHANISM_INVALID": (UnsupportedByBackend, "the token does not offer this mechanism", None),
    "CKR_MECHANISM_PARAM_INVALID": (UnsupportedByBackend, "the token refused the mechanism parameters", None),
    "CKR_FUNCTION_NOT_SUPPORTED": (UnsupportedByBackend, "the module does not implement it", None),
    "CKR_KEY_SIZE_RANGE": (UnsupportedByBackend, "the key size is outside the token's range", None),
    "CKR_DOMAIN_PARAMS_INVALID": (UnsupportedByBackend, "the token does not support these parameters", None),
    "CKR_CURVE_NOT_SUPPORTED": (UnsupportedByBackend, "the token does not support this curve", None),
    "CKR_KEY_TYPE_INCONSISTENT": (UnsupportedByBackend, "the key type does not fit the mechanism", None),
    "CKR_KEY_NOT_WRAPPABLE": (UnsupportedByBackend, "the token cannot wrap this key", None),
    "CKR_WRAPPING_KEY_TYPE_INCONSISTENT": (UnsupportedByBackend, "the key type does not fit the mechanism", None),
    "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT": (UnsupportedByBackend, "the key type does not fit the mechanism",
                                             None),
    "CKR_KEY_INDIGESTIBLE": (UnsupportedByBackend, "the token cannot process this key", None),
    **dict.fromkeys(("CKR_TEMPLATE_INCONSISTENT", "CKR_TEMPLATE_INCOMPLETE", "CKR_ATTRIBUTE_TYPE_INVALID",
                     "CKR_ATTRIBUTE_VALUE_INVALID"), _REFUSED),
    **dict.fromkeys(("CKR_KEY_FUNCTION_NOT_PERMITTED", "CKR_ACTION_PROHIBITED", "CKR_ATTRIBUTE_READ_ONLY",
                     "CKR_ATTRIBUTE_SENSITIVE", "CKR_KEY_UNEXTRACTABLE"), _FORBIDDEN),
    "CKR_TOKEN_WRITE_PROTECTED": (OperationNotPermitted, "the token is write-protected", None),
    "CKR_DATA_LEN_RANGE": (InvalidInput, "the data length does not fit the key and mechanism", None),
    "CKR_DATA_INVALID": (InvalidInput, "the token refused the data", None),
    "CKR_ARGUMENTS_BAD": (InvalidInput, "the token refused the arguments", None),
    "CKR_SESSION_COUNT": (BackendUnavailable, "the token has no free session", None),
    **dict.fromkeys(_PIN_REFUSED, (BackendUnavailable, "the token refused the PIN", None)),
    **dict.fromkeys(("CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_CLOSED", "CKR_USER_NOT_LOGGED_IN"), _STALE),
    "CKR_CRYPTOKI_NOT_INITIALIZED": (BackendUnavailable, "the module is not initialised", _MODULE),
    **dict.fromkeys(("CKR_DEVICE_REMOVED", "CKR_TOKEN_NOT_PRESENT", "CKR_TOKEN_NOT_RECOGNISED",
                     "CKR_DEVICE_ERROR", "CKR_DEVICE_MEMORY", "CKR_GENERAL_ERROR", "CKR_SLOT_ID_INVALID"),
                    _GONE),
}


def _ckr_name(exc: PKCS11Error) -> str:
    """The ``CKR_`` name behind a python-pkcs11 exception (its class name, or the code in its message)."""
    if type(exc) is not PKCS11Error:
        words = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type(exc).__name__)
        return "CKR_" + words.upper()
    if "not initialized" in str(exc):
        return "CKR_CRYPTOKI_NOT_INITIALIZED"
    code = re.search(r"0x([0-9a-fA-F]+)", str(exc))
    return _CKR_CODES.get(int(code.group(1), 16), f"CKR_0x{code.group(1)}") if code else "CKR_GENERAL_ERROR"


@dataclass(slots=True)
class _Ctx:
    """What a call is doing, for error messages."""

    action: str
    label: str | None = None
    mechanism: str | None = None


def _translate(ctx: _Ctx, ckr: str, *, token_answers: bool = False) -> HsmError:
    """The base.py exception for ``ckr``; an 'unreachable' code while the token answers is the call's."""
    kind, reason, recovery = _CKR.get(ckr, (HsmError, "the token reported an error", None))
    if token_answers and recovery == _TOKEN:
        kind, reason = HsmError, "the token could not perform it"
    subject = f"{ctx.action} of key '{ctx.label}'" if ctx.label is not None else ctx.action
    via = f" with {ctx.mechanism}" if ctx.mechanism else ""
    return kind(f"{subject}{via} failed: {reason} ({ckr}).")


def _ckm_name(mechanism: int) -> str:
    try:
        return "CKM_" + Mechanism(mechanism).name
    except ValueError:
        return f"CKM_0x{mechanism:X}"


# ------------------------------------------------------------------------------------------- algorithm tables
@dataclass(frozen=True, slots=True)
class _HashRow:
    oid: bytes                 # DER OBJECT IDENTIFIER of the hash, for DigestInfo
    digest: Mechanism          # hashAlg of CK_RSA_PKCS_PSS_PARAMS
    mgf: MGF
    rsa_pkcs: Mechanism        # combined hash-and-sign mechanisms
    rsa_pss: Mechanism
    ecdsa: Mechanism | None
    dsa: Mechanism | None
    pss_param_ok: bool         # SHA-1/SHA-2: every PKCS#11 2.40 module takes it as the PSS hashAlg


def _row(name: str, oid: str) -> _HashRow:
    """Row for hash ``name`` (python-pkcs11 spelling: SHA1, SHA256, SHA3_256 ...)."""
    sha2 = not name.startswith("SHA3")
    return _HashRow(bytes.fromhex(oid), Mechanism["SHA_1" if name == "SHA1" else name], MGF[name],
                    Mechanism[f"{name}_RSA_PKCS"], Mechanism[f"{name}_RSA_PKCS_PSS"],
                    Mechanism[f"ECDSA_{name}"] if sha2 else None,
                    Mechanism[f"DSA_{name}"] if sha2 else None, sha2)


_NIST = "0609608648016503040"  # 2.16.840.1.101.3.4.2.x
_HASHES: dict[HashAlg, _HashRow] = {
    HashAlg.SHA1: _row("SHA1", "06052b0e03021a"), HashAlg.SHA224: _row("SHA224", _NIST + "204"),
    HashAlg.SHA256: _row("SHA256", _NIST + "201"), HashAlg.SHA384: _row("SHA384", _NIST + "202"),
    HashAlg.SHA512: _row("SHA512", _NIST + "203"), HashAlg.SHA3_224: _row("SHA3_224", _NIST + "207"),
    HashAlg.SHA3_256: _row("SHA3_256", _NIST + "208"), HashAlg.SHA3_384: _row("SHA3_384", _NIST + "209"),
    HashAlg.SHA3_512: _row("SHA3_512", _NIST + "20a"),
}
#: Key type each signature scheme needs.
_SCHEME_KEY = {SignScheme.RSA_PKCS1V15: KeyType.RSA, SignScheme.RSA_PKCS1V15_RAW: KeyType.RSA,
               SignScheme.RSA_PSS: KeyType.RSA, SignScheme.DSA: KeyType.DSA, SignScheme.ECDSA: KeyType.EC,
               SignScheme.EDDSA: KeyType.ED}
#: Schemes without a hash, with the one mechanism that runs them.
_UNHASHED = {SignScheme.RSA_PKCS1V15_RAW: M.RSA_PKCS, SignScheme.EDDSA: M.EDDSA}
#: HMAC key type -> (hash, its HMAC mechanism, the dedicated PKCS#11 key type).
_HMAC = {KeyType.HMAC_SHA1: (HashAlg.SHA1, M.SHA_1_HMAC, CKK.SHA_1_HMAC),
         KeyType.HMAC_SHA224: (HashAlg.SHA224, M.SHA224_HMAC, CKK.SHA224_HMAC),
         KeyType.HMAC_SHA256: (HashAlg.SHA256, M.SHA256_HMAC, CKK.SHA256_HMAC),
         KeyType.HMAC_SHA384: (HashAlg.SHA384, M.SHA384_HMAC, CKK.SHA384_HMAC),
         KeyType.HMAC_SHA512: (HashAlg.SHA512, M.SHA512_HMAC, CKK.SHA512_HMAC)}
#: Our key type -> (PKCS#11 key type, generation mechanism, key pair?).
_GENERATION = {KeyType.RSA: (CKK.RSA, M.RSA_PKCS_KEY_PAIR_GEN, True),
               KeyType.DSA: (CKK.DSA, M.DSA_KEY_PAIR_GEN, True),
               KeyType.EC: (CKK.EC, M.EC_KEY_PAIR_GEN, True),
               KeyType.ED: (CKK.EC_EDWARDS, M.EC_EDWARDS_KEY_PAIR_GEN, True),
               KeyType.AES: (CKK.AES, M.AES_KEY_GEN, False),
               KeyType.TDEA: (CKK.DES3, M.DES3_KEY_GEN, False),
               KeyType.CAMELLIA: (CKK.CAMELLIA, M(0x550), False),  # CKM_CAMELLIA_KEY_GEN
               **{t: (CKK.GENERIC_SECRET, M.GENERIC_SECRET_KEY_GEN, False) for t in _HMAC}}
#: PKCS#11 key type -> ours (generic secrets are told apart by :func:`_hmac_type`).
_KEY_TYPES: dict[int, KeyType] = {CKK.RSA: KeyType.RSA, CKK.DSA: KeyType.DSA, CKK.EC: KeyType.EC,
                                  CKK.EC_EDWARDS: KeyType.ED, CKK.AES: KeyType.AES, CKK.DES3: KeyType.TDEA,
                                  CKK.CAMELLIA: KeyType.CAMELLIA, 0x33: KeyType.CHACHA20,
                                  **{ckk: t for t, (_, _, ckk) in _HMAC.items()}}
_RSA_SIZES, _DSA_SIZES, _AES_SIZES = (2048, 3072, 4096), (1024, 2048, 3072), (128, 192, 256)
_FIXED_SIZES = {KeyType.TDEA: 192, KeyType.CHACHA20: 256}  # secret keys without CKA_VALUE_LEN
_ED_NAMES = {"edwards25519": softcrypto.ED25519_OID, "edwards448": softcrypto.ED448_OID}
_ED_KEYS = {softcrypto.ED25519_OID: ed25519.Ed25519PublicKey, softcrypto.ED448_OID: ed448.Ed448PublicKey}

#: KeyAttributes field -> attribute, on the private (or secret) object and on the public object.
_PRIVATE_FLAGS = {"sign": Attribute.SIGN, "decrypt": Attribute.DECRYPT, "unwrap": Attribute.UNWRAP,
                  "derive": Attribute.DERIVE, "sensitive": Attribute.SENSITIVE,
                  "extractable": Attribute.EXTRACTABLE, "modifiable": Attribute.MODIFIABLE,
                  "destroyable": Attribute.DESTROYABLE, "copyable": Attribute.COPYABLE}
_PUBLIC_FLAGS = {"encrypt": Attribute.ENCRYPT, "verify": Attribute.VERIFY, "wrap": Attribute.WRAP}
_HISTORY = {"always_sensitive": Attribute.ALWAYS_SENSITIVE, "never_extractable": Attribute.NEVER_EXTRACTABLE}
_UNREPORTED = {"modifiable": True, "destroyable": True, "copyable": True}  # PKCS#11 defaults
_OPTIONAL = (Attribute.DESTROYABLE, Attribute.COPYABLE, Attribute.ALLOWED_MECHANISMS)  # dropped if refused
_TEMPLATE_REFUSED = (pkcs11.exceptions.AttributeTypeInvalid, pkcs11.exceptions.AttributeValueInvalid,
                     pkcs11.exceptions.TemplateInconsistent)


def _make_mapper() -> AttributeMapper:
    """python-pkcs11's mapper plus Attribute.ALLOWED_MECHANISMS, and key types read as plain ints."""
    mapper, ulong = AttributeMapper(), struct.Struct("L")
    mapper.register_handler(Attribute.ALLOWED_MECHANISMS, lambda v: b"".join(ulong.pack(int(m)) for m in v),
                            lambda b: [m for (m,) in ulong.iter_unpack(b)])
    mapper.register_handler(Attribute.KEY_TYPE, lambda v: ulong.pack(int(v)), lambda b: ulong.unpack(b)[0])
    return mapper


_MAPPER = _make_mapper()


# -------------------------------------------------------------------------------------------- sign planning
@dataclass(frozen=True, slots=True)
class _Plan:
    """How one SignMechanism runs on a token."""

    mechanism: Mechanism          # given to C_SignInit
    param: bytes | None = None    # CK_RSA_PKCS_PSS_PARAMS
    hash_here: bool = False       # hash the data with hashlib first
    encode: str | None = None     # "digest_info" or "pss": build the block here
    der: bool = False             # raw r||s -> DER SEQUENCE {r, s}


@functools.lru_cache(maxsize=4096)
def _plan(mechs: frozenset[int], key_type: KeyType, m: SignMechanism) -> _Plan | None:
    """The route for ``m`` on a token offering ``mechs``; None when it cannot run (so: the capability set)."""
    if _SCHEME_KEY.get(m.scheme) is not key_type or m.deterministic:
        return None
    if m.scheme in _UNHASHED:
        ckm = _UNHASHED[m.scheme]
        return _Plan(ckm) if m.hash is None and not m.prehashed and ckm in mechs else None
    alg = _hash_of(m)
    if alg is None:
        return None
    row, hash_here = _HASHES[alg], not m.prehashed
    if m.scheme is SignScheme.RSA_PKCS1V15:
        if hash_here and row.rsa_pkcs in mechs:
            return _Plan(row.rsa_pkcs)
        return _Plan(M.RSA_PKCS, hash_here=hash_here, encode="digest_info") if M.RSA_PKCS in mechs else None
    if m.scheme is SignScheme.RSA_PSS:
        # packed here: python-pkcs11 0.10.1 builds PSS parameters only for the SHA-1/SHA-2 mechanisms
        param = struct.pack("LLL", row.digest, row.mgf, alg.digest_size)
        if hash_here and row.rsa_pss in mechs:
            return _Plan(row.rsa_pss, param)
        if M.RSA_PKCS_PSS in mechs and (row.pss_param_ok or row.digest in mechs):
            return _Plan(M.RSA_PKCS_PSS, param, hash_here)
        return _Plan(M.RSA_X_509, hash_here=hash_here, encode="pss") if M.RSA_X_509 in mechs else None
    raw, combined = (M.ECDSA, row.ecdsa) if m.scheme is SignScheme.ECDSA else (M.DSA, row.dsa)
    if raw in mechs:
        return _Plan(raw, hash_here=hash_here, der=True)
    return _Plan(combined, der=True) if hash_here and combined in mechs else None


def _hash_of(m: SignMechanism) -> HashAlg | None:
    """The scheme's digest as a HashAlg (a PreHash of the same name is equal to it); None for SHAKE."""
    try:
        return HashAlg(m.hash) if m.hash is not None else None
    except ValueError:
        return None


def _all_mechanisms(scheme: SignScheme) -> list[SignMechanism]:
    if scheme in _UNHASHED:
        return [SignMechanism(scheme)]
    return [SignMechanism(scheme, h, pre) for h in HashAlg for pre in (False, True)]


def _digest_info(alg: HashAlg, digest: bytes) -> bytes:
    """DER DigestInfo (RFC 8017 §9.2) with NULL parameters."""
    oid = _HASHES[alg].oid
    body = b"\x30" + bytes([len(oid) + 2]) + oid + b"\x05\x00" + b"\x04" + bytes([len(digest)]) + digest
    return b"\x30" + bytes([len(body)]) + body


def _emsa_pss(m_hash: bytes, alg: HashAlg, modulus_bits: int) -> bytes:
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



# ------------------------------------------------------------------------------------------ key-object helpers
def _describe_mechanism(m: SignMechanism) -> str:
    words = [m.scheme.value, m.hash.value if m.hash else "", "prehashed" if m.prehashed else "",
             "deterministic" if m.deterministic else ""]
    return " ".join(w for w in words if w)


def _refuse_context(mechanism: SignMechanism, context: bytes | None) -> None:
    """A context string belongs to ML-DSA / SLH-DSA; binding none silently would mislead the caller."""
    if context:
        raise InvalidInput(f"{mechanism.scheme} takes no context string")


def _hmac_type(attrs: dict[int, Any]) -> KeyType:
    """The HMAC hash of a generic secret: from Attribute.ALLOWED_MECHANISMS, else guessed from its length."""
    allowed = set(attrs.get(Attribute.ALLOWED_MECHANISMS) or [])
    for key_type, (_, hmac, _) in _HMAC.items():
        if hmac in allowed:
            return key_type
    guessed = HashAlg.for_digest_size(attrs.get(Attribute.VALUE_LEN, 0))
    return next((t for t, (alg, _, _) in _HMAC.items() if alg is guessed), KeyType.HMAC_SHA256)


def _curve_oid(params: bytes | None) -> str | None:
    """Dotted OID from CKA_EC_PARAMS: a named-curve OID, or a PrintableString naming an Edwards curve."""
    try:
        value = asn1_load(params) if params else None
    except ValueError:
        return None
    if isinstance(value, ObjectIdentifier):
        return value.dotted
    return _ED_NAMES.get(value.native) if isinstance(value, PrintableString) else None


def _ec_point(raw: bytes, edwards: bool) -> bytes:
    """CKA_EC_POINT as the bare point: most tokens wrap it in an OCTET STRING, some do not."""
    try:
        inner = bytes(OctetString.load(raw, strict=True).native)
    except ValueError:
        return raw
    plausible = len(inner) in (32, 57) if edwards else inner[:1] in (b"\x02", b"\x03", b"\x04")
    return inner if plausible else raw


def _public_facts(key_type: KeyType, key: Any, public: Any | None) -> tuple[int | None, str | None,
                                                                            bytes | None]:
    """(size in bits, curve OID, DER SubjectPublicKeyInfo or None) of an asymmetric key."""
    source = public if public is not None else key

    def integers(*names: Attribute) -> list[int]:
        attrs = source.get_attributes(list(names))
        return [int.from_bytes(attrs.get(name, b""), "big") for name in names]

    if key_type is KeyType.RSA:
        n, e = integers(Attribute.MODULUS, Attribute.PUBLIC_EXPONENT)
        spki = softcrypto.spki_der(rsa.RSAPublicNumbers(e, n).public_key()) if e else None
        return n.bit_length(), None, spki
    if key_type is KeyType.DSA:
        p, q, g = integers(Attribute.PRIME, Attribute.SUBPRIME, Attribute.BASE)
        if public is None:  # the private object's CKA_VALUE is the secret x
            return p.bit_length(), None, None
        y = int.from_bytes(public[Attribute.VALUE], "big")
        numbers = dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g))
        return p.bit_length(), None, softcrypto.spki_der(numbers.public_key())
    params = source[Attribute.EC_PARAMS]
    oid = _curve_oid(params)
    point = _ec_point(public[Attribute.EC_POINT], key_type is KeyType.ED) if public is not None else None
    if key_type is KeyType.ED:
        if not point or oid is None or oid not in _ED_KEYS:
            return softcrypto.ED_CURVES.get(oid or ""), oid, None
        ed_key = _ED_KEYS[oid].from_public_bytes(point)  # type: ignore[attr-defined]
        return softcrypto.ED_CURVES[oid], oid, softcrypto.spki_der(ed_key)
    size = softcrypto.EC_CURVES[oid][1] if oid in softcrypto.EC_CURVES else None
    if not point:  # a private key without its public object (made by C_UnwrapKey)
        return size, oid, None
    encoded = {Attribute.EC_PARAMS: params, Attribute.EC_POINT: OctetString(point).dump()}
    spki = encode_ec_public_key(encoded)  # type: ignore[arg-type]  # it only indexes the two attributes
    return size, oid, spki if point else None


