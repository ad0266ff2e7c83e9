"""PKCS#11 partition: keys on any PKCS#11 module, driven through python-pkcs11.

Threads. python-pkcs11 0.10.1 always calls ``C_Initialize(NULL)``, so SoftHSM2 (and other modules) assume a
single-threaded application while python-pkcs11 releases the GIL around every C call. Each process therefore
keeps one :class:`_Module` per module file: right after python-pkcs11 loaded it, the module is finalised and
initialised again with ``CKF_OS_LOCKING_OK`` through its own function list (ctypes with ``RTLD_NOLOAD``, so
it is the same library instance, which is checked). A module that answers ``CKR_CANT_LOCK`` gets all calls
of the process serialised instead. A partition keeps a pool of R/W sessions, handed out first come, first
served; each new session logs in (the token answers "already logged in" after the first). A session
remembers the signing keys it has found by label and confirms CKA_LABEL and CKA_ID at each use, since
handles of deleted objects may be reused. A forked child re-initialises the module before its first call.

Recovery. Every python-pkcs11 error passes :func:`_translate`, which names the key, mechanism and ``CKR_``
code. A stale session (closed underneath, logged out) is replaced and the call retried; a module finalised
underneath is initialised again and the call retried. A lost token gives :class:`BackendUnavailable` and
drops the partition's sessions; the next call opens new ones and, if the token cannot be found,
re-initialises the module (at most every :data:`REINIT_INTERVAL` s: SoftHSM2 rescans its token directory only
in ``C_Initialize``; other partitions of the module in this process lose their sessions and retry).

HMAC keys are ``CKK_GENERIC_SECRET`` with ``CKA_ALLOWED_MECHANISMS = [CKM_SHAx_HMAC]``: SoftHSM2 stores a
requested ``CKK_SHAx_HMAC`` as generic secret, and the allowed mechanism both records and enforces the hash.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import secrets
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pkcs11
from asn1crypto.core import ObjectIdentifier, OctetString, PrintableString
from asn1crypto.core import load as asn1_load
from cryptography.hazmat.primitives.asymmetric import dsa, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import MGF, Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as CKK
from pkcs11.attributes import AttributeMapper
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_ec_public_key

from hsmgate.hsm import softcrypto
from hsmgate.hsm.base import (
    BackendUnavailable,
    Capabilities,
    HashAlg,
    HsmError,
    InvalidInput,
    KeyAttributes,
    KeyExists,
    KeyInfo,
    KeyNotFound,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    Partition,
    SignMechanism,
    SignScheme,
    UnsupportedByBackend,
)

T = TypeVar("T")
M = Mechanism

#: Minimum seconds between two run-time re-initialisations of a module (token missing).
REINIT_INTERVAL = 1.0
#: Token look-ups when a partition is created. SoftHSM2 processes sharing a token directory sometimes miss
#: the token in C_Initialize while another process rewrites its files (measured: 2 of 50 starts).
STARTUP_ATTEMPTS = 4
#: Seconds a call waits for a free session before giving up.
SESSION_WAIT = 30.0
#: Signing keys remembered per session (each use re-reads CKA_LABEL and CKA_ID to confirm the handle).
KEY_CACHE_SIZE = 256

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


# ---------------------------------------------------------------------------------------- process-wide module
_FUNCTION_LIST = ("C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList",
                  "C_GetSlotInfo", "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo",
                  "C_InitToken", "C_InitPIN", "C_SetPIN", "C_OpenSession", "C_CloseSession",
                  "C_CloseAllSessions", "C_GetSessionInfo", "C_GetOperationState", "C_SetOperationState",
                  "C_Login", "C_Logout")
_PROTOTYPES = {"C_Initialize": (ctypes.c_void_p,), "C_Finalize": (ctypes.c_void_p,),
               "C_Login": (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong),
               "C_CloseAllSessions": (ctypes.c_ulong,)}


class _CkFunctionList(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte),
                *((name, ctypes.c_void_p) for name in _FUNCTION_LIST)]


class _CkInitializeArgs(ctypes.Structure):
    _fields_ = [("create_mutex", ctypes.c_void_p), ("destroy_mutex", ctypes.c_void_p),
                ("lock_mutex", ctypes.c_void_p), ("unlock_mutex", ctypes.c_void_p),
                ("flags", ctypes.c_ulong), ("reserved", ctypes.c_void_p)]


class _Module:
    """One PKCS#11 module file in this process: python-pkcs11's ``lib``, the locking mode, and a gate that
    lets calls run side by side (shared) but a re-initialisation only alone (exclusive)."""

    _registry: ClassVar[dict[str, _Module]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self.lib = pkcs11.lib(path)
        dll = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_NOW", 0))
        pointer = ctypes.POINTER(_CkFunctionList)()
        if dll.C_GetFunctionList(ctypes.byref(pointer)) != CKR_OK:
            raise PKCS11Error("C_GetFunctionList failed")
        functions = pointer.contents
        self._functions = {name: ctypes.CFUNCTYPE(ctypes.c_ulong, *args)(getattr(functions, name))
                           for name, args in _PROTOTYPES.items()}
        self.generation, self.pid, self.os_locking = 0, os.getpid(), True
        self._cond, self._readers, self._writer = threading.Condition(), 0, False
        self.os_locking = self._switch_to_os_locking()
        self.initialised_at = time.monotonic()

    @classmethod
    def load(cls, module_path: str) -> _Module:
        """The module for ``module_path`` in this process, loaded on first use."""
        path = os.path.realpath(module_path)
        if not os.path.isfile(path):
            raise BackendUnavailable(f"PKCS#11 module {module_path} does not exist.")
        with cls._registry_lock:
            module = cls._registry.get(path)
            if module is None:
                try:
                    module = cls._registry[path] = cls(path)
                except (PKCS11Error, OSError, AttributeError) as exc:
                    message = f"PKCS#11 module {module_path} cannot be used ({exc})."
                    raise BackendUnavailable(message) from None
        module.ensure_process()
        return module

    def raw(self, function: str, *args: Any) -> int:
        """Call ``function`` of the module's function list directly; returns the CK_RV."""
        return int(self._functions[function](*args))

    def _switch_to_os_locking(self) -> bool:
        """Re-initialise with CKF_OS_LOCKING_OK; False when the module cannot lock (calls get serialised)."""
        if self.raw("C_Finalize", None) != CKR_OK:
            raise PKCS11Error("C_Finalize through the function list failed")
        try:
            self.lib.get_slots()
        except PKCS11Error:
            pass  # expected: python-pkcs11's instance is the one just finalised
        else:
            raise PKCS11Error("ctypes reached another instance of the module")
        if self.raw("C_Initialize", ctypes.byref(_CkInitializeArgs(flags=CKF_OS_LOCKING_OK))) == CKR_OK:
            return True
        if self.raw("C_Initialize", None) != CKR_OK:
            raise PKCS11Error("C_Initialize failed")
        return False

    def ensure_process(self) -> None:
        """After a fork, the child initialises the module again before its first call."""
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self._cond, self._readers, self._writer = threading.Condition(), 0, False
            self.reinitialize(self.generation, 0.0)

    def enter_shared(self) -> None:
        if not self.os_locking:
            return self.enter_exclusive()
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1

    def leave_shared(self) -> None:
        if not self.os_locking:
            return self.leave_exclusive()
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def enter_exclusive(self) -> None:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._writer = True
            while self._readers:
                self._cond.wait()

    def leave_exclusive(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    def reinitialize(self, seen_generation: int, min_interval: float) -> bool:
        """C_Finalize + C_Initialize, unless another thread did it since ``seen_generation`` or the last one
        is younger than ``min_interval`` s. True when the module is now newer than the caller saw."""
        self.enter_exclusive()
        try:
            if self.generation != seen_generation:
                return True
            if time.monotonic() - self.initialised_at < min_interval:
                return False
            self.raw("C_Finalize", None)
            args = ctypes.byref(_CkInitializeArgs(flags=CKF_OS_LOCKING_OK)) if self.os_locking else None
            rv = self.raw("C_Initialize", args)
            self.generation, self.initialised_at = self.generation + 1, time.monotonic()
            return rv in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED)
        finally:
            self.leave_exclusive()


class _TokenMissing(Exception):
    pass


@dataclass(slots=True)
class _Lease:
    """A session of the pool, stamped with the module generation and pool epoch it was opened in, and
    the signing keys it has looked up: label -> (key object, CKA_ID)."""

    session: Any  # pkcs11.Session
    generation: int
    epoch: int
    keys: dict[str, tuple[Any, bytes]] = field(default_factory=dict)


_OPEN_NEW = "open a new session"


@dataclass(slots=True)
class _Waiter:
    granted: _Lease | str | None = None  # an idle session, or _OPEN_NEW


@dataclass(slots=True)
class _Pool:
    """Sessions of one partition in one process; waiting threads are served first come, first served."""

    pid: int = field(default_factory=os.getpid)
    cond: threading.Condition = field(default_factory=threading.Condition)
    idle: list[_Lease] = field(default_factory=list)
    waiters: deque[_Waiter] = field(default_factory=deque)
    open: int = 0
    epoch: int = 0


# ------------------------------------------------------------------------------------------- the partition
class Pkcs11Partition(Partition):
    """A partition on one token of a PKCS#11 module, chosen by token label or by slot id."""

    def __init__(self, name: str, *, module_path: str, token_label: str | None = None,
                 slot_id: int | None = None, pin: str, pool_size: int = 4) -> None:
        if (token_label is None) == (slot_id is None):
            raise ValueError("give exactly one of token_label and slot_id")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.name = name
        self._token_label, self._slot_id, self._pin, self._pool_size = token_label, slot_id, pin, pool_size
        self._where = f"token '{token_label}'" if token_label is not None else f"slot {slot_id}"
        self._closed, self._pool, self._generate_lock = False, _Pool(), threading.Lock()
        self._pin_refused: str | None = None  # never retry a refused PIN: tokens lock it after a few tries
        self._module, self._module_path = _Module.load(module_path), module_path
        lease = self._checkout(startup=True)
        try:
            self._mechanisms, self._ranges = self._read_mechanisms(lease.session)
        finally:
            self._checkin(lease, healthy=True)
        self._capabilities = self._derive_capabilities()

    # --------------------------------------------------------------------------------------------- public API
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def generate(self, label: str, spec: KeySpec, attributes: KeyAttributes,
                 key_id: bytes | None = None) -> KeyInfo:
        if not label:
            raise InvalidInput("a key label must not be empty")
        p11_type, gen_mechanism, pair, size = self._check_spec(spec)
        private = {a: getattr(attributes, f) for f, a in _PRIVATE_FLAGS.items()} | {Attribute.PRIVATE: True}
        public = {a: getattr(attributes, f) for f, a in _PUBLIC_FLAGS.items()}
        public |= {Attribute.PRIVATE: False, Attribute.MODIFIABLE: attributes.modifiable}
        common = {"id": key_id or secrets.token_bytes(16), "label": label, "store": True, "capabilities": 0}
        if spec.key_type is not KeyType.DSA:  # DSA: python-pkcs11 makes domain parameters, then the pair
            common["mechanism"] = gen_mechanism
        if spec.curve_oid:
            public[Attribute.EC_PARAMS] = ObjectIdentifier(spec.curve_oid).dump()

        def run(lease: _Lease, ctx: _Ctx) -> KeyInfo:
            session, ctx.mechanism = lease.session, _ckm_name(gen_mechanism)
            if self._keys_labelled(session, label):
                raise KeyExists(f"a key labelled '{label}' already exists on {self._where}")
            private_t, secret_t = dict(private), public | private  # a secret key is CKA_PRIVATE
            if spec.key_type in _HMAC:
                secret_t[Attribute.ALLOWED_MECHANISMS] = [_HMAC[spec.key_type][1]]
            while True:
                try:
                    if not pair:
                        key = session.generate_key(p11_type, size, template=secret_t, **common)
                        return self._describe(session, label, key, None)
                    pub, priv = session.generate_keypair(p11_type, size, public_template=public,
                                                         private_template=private_t, **common)
                    return self._describe(session, label, priv, pub)
                except _TEMPLATE_REFUSED:  # retry once without the attributes a 2.20 module may not know
                    if not any(a in t for t in (private_t, secret_t) for a in _OPTIONAL):
                        raise
                    private_t, secret_t = ({a: v for a, v in t.items() if a not in _OPTIONAL}
                                           for t in (private_t, secret_t))

        with self._generate_lock:  # the label check and the creation belong together
            return self._call("generation", label, run)

    def list_labels(self) -> list[str]:
        def run(lease: _Lease, ctx: _Ctx) -> list[str]:
            labels = {obj[Attribute.LABEL] for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY)
                      for obj in lease.session.get_objects({Attribute.CLASS: cls})}
            return sorted(label for label in labels if label)
        return self._call("listing keys", None, run)

    def get(self, label: str) -> KeyInfo:
        def run(lease: _Lease, ctx: _Ctx) -> KeyInfo:
            return self._describe(lease.session, label, self._key_object(lease.session, label))
        return self._call("reading", label, run)

    def delete(self, label: str) -> None:
        def run(lease: _Lease, ctx: _Ctx) -> None:
            session = lease.session
            key = self._key_object(session, label)
            attrs = key.get_attributes([Attribute.CLASS, Attribute.DESTROYABLE, Attribute.ID,
                                        Attribute.KEY_TYPE])
            if attrs.get(Attribute.DESTROYABLE, True) is False:
                raise OperationNotPermitted(f"key '{label}' is not destroyable (CKA_DESTROYABLE is false)")
            private = attrs[Attribute.CLASS] == ObjectClass.PRIVATE_KEY
            public = self._public_of(session, key, attrs) if private else None
            key.destroy()
            if public is not None:
                public.destroy()
        self._call("deletion", label, run)

    def sign(self, label: str, mechanism: SignMechanism, data: bytes, *,
             context: bytes | None = None) -> bytes:
        alg = _hash_of(mechanism)
        _refuse_context(mechanism, context)
        if mechanism.deterministic:
            raise UnsupportedByBackend(f"{_describe_mechanism(mechanism)}: a PKCS#11 token does not promise "
                                       "RFC 6979 deterministic nonces")
        if mechanism.prehashed and alg and len(data) != alg.digest_size:
            raise InvalidInput(f"a prehashed {alg} payload must be {alg.digest_size} bytes, got {len(data)}")

        def run(lease: _Lease, ctx: _Ctx) -> bytes:
            key, attrs = self._signing_key(lease, label)
            key_type = _KEY_TYPES.get(attrs[Attribute.KEY_TYPE])
            plan = _plan(self._mechanisms, key_type, mechanism) if key_type else None
            if plan is None:
                raise UnsupportedByBackend(f"{_describe_mechanism(mechanism)} is not available for the "
                                           f"{key_type or 'unknown'} key '{label}' on {self._where}")
            if not attrs.get(Attribute.SIGN):
                raise OperationNotPermitted(f"key '{label}' may not sign (CKA_SIGN is false)")
            ctx.mechanism = _ckm_name(plan.mechanism)
            payload = hashlib.new(alg.value, data).digest() if plan.hash_here and alg else data
            if plan.mechanism in (M.RSA_PKCS, M.RSA_X_509):
                bits = int.from_bytes(key[Attribute.MODULUS], "big").bit_length()
                if plan.encode == "digest_info" and alg:
                    payload = _digest_info(alg, payload)
                elif plan.encode == "pss" and alg:
                    payload = _emsa_pss(payload, alg, bits)
                if plan.mechanism == M.RSA_PKCS and len(payload) > (bits + 7) // 8 - 11:
                    raise InvalidInput(f"{len(payload)} bytes are too long for PKCS#1 v1.5 padding with the "
                                       f"{bits}-bit key '{label}' (CKR_DATA_LEN_RANGE)")
            signature = key.sign(payload, mechanism=plan.mechanism, mechanism_param=plan.param)
            if not plan.der:
                return bytes(signature)
            half = len(signature) // 2  # r || s -> DER, as pkcs11.util.ec.encode_ecdsa_signature but in C
            return encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                        int.from_bytes(signature[half:], "big"))
        return self._call("signing", label, run)

    def verify(self, label: str, mechanism: SignMechanism, data: bytes, signature: bytes,
               *, context: bytes | None = None) -> bool:
        """Checked with ``cryptography`` against the public key read from the token; accepts exactly the
        mechanisms :meth:`sign` can produce."""
        _refuse_context(mechanism, context)
        info = self.get(label)
        if not self._capabilities.can_sign(info.key_type, mechanism):
            raise UnsupportedByBackend(f"{_describe_mechanism(mechanism)} is not available for the "
                                       f"{info.key_type} key '{label}' on {self._where}")
        if info.public_key is None:
            raise UnsupportedByBackend(f"key '{label}' has no public key on {self._where}")
        return softcrypto.verify(softcrypto.load_spki(info.public_key), mechanism, data, signature)

    def generate_random(self, length: int) -> bytes:
        if length < 0:
            raise InvalidInput("the number of random bytes must not be negative")
        if length == 0:
            return b""
        return self._call("random generation", None,
                          lambda lease, ctx: lease.session.generate_random(length * 8))

    def close(self) -> None:
        self._closed = True
        with self._pool.cond:
            idle, self._pool.idle = self._pool.idle, []
            self._pool.open -= len(idle)
            self._pool.cond.notify_all()
        self._close_stale(idle)

    # ------------------------------------------------------------------------------------ sessions, recovery
    def _call(self, action: str, label: str | None, run: Callable[[_Lease, _Ctx], T]) -> T:
        """Run ``run(lease, ctx)`` on a pooled session; the one place python-pkcs11 errors are mapped."""
        ctx, module, last = _Ctx(action, label), self._module, "CKR_SESSION_HANDLE_INVALID"
        for _ in range(self._pool_size + 2):
            lease = self._checkout()
            healthy, recovery = True, None
            module.enter_shared()
            try:
                if lease.generation != module.generation:  # opened before a re-initialisation
                    healthy = False
                    continue
                return run(lease, ctx)
            except PKCS11Error as exc:
                last = _ckr_name(exc)
                recovery = _CKR.get(last, (HsmError, "", None))[2]
                if recovery is None:
                    raise _translate(ctx, last) from None
                if recovery == _TOKEN and self._token_answers(lease.session):
                    raise _translate(ctx, last, token_answers=True) from None
                healthy = False
                if recovery == _TOKEN:
                    with self._pool.cond:
                        self._pool.epoch += 1  # every session of this partition is suspect now
                    raise _translate(ctx, last) from None
            finally:
                module.leave_shared()
                self._checkin(lease, healthy)
                if recovery == _MODULE:
                    module.reinitialize(lease.generation, 0.0)
        raise _translate(ctx, last)

    def _checkout(self, startup: bool = False) -> _Lease:
        self._module.ensure_process()
        if self._pool.pid != os.getpid():
            self._pool = _Pool()  # a forked child: the parent's sessions are not ours
        pool, stale = self._pool, list[_Lease]()
        try:
            with pool.cond:
                granted = None if pool.waiters else self._grant(pool, stale)
                if granted is None:
                    waiter, deadline = _Waiter(), time.monotonic() + SESSION_WAIT
                    pool.waiters.append(waiter)
                    while waiter.granted is None and not self._closed:
                        if not pool.cond.wait(deadline - time.monotonic()):
                            break
                    granted = waiter.granted
                    if granted is None:
                        pool.waiters.remove(waiter)
                        raise BackendUnavailable(f"partition '{self.name}' is closed" if self._closed else
                                                 f"no free session on {self._where} in {SESSION_WAIT:.0f} s")
        finally:
            self._close_stale(stale)
        if isinstance(granted, _Lease):
            return granted
        try:
            return self._open_lease(pool.epoch, startup)
        except BaseException:
            with pool.cond:
                pool.open -= 1
                self._hand_out(pool, stale)
            self._close_stale(stale)
            raise

    def _checkin(self, lease: _Lease, healthy: bool) -> None:
        pool, stale = self._pool, list[_Lease]()
        with pool.cond:
            if healthy and not self._closed and self._fresh(lease):
                pool.idle.append(lease)
            else:
                pool.open -= 1
                stale.append(lease)
            self._hand_out(pool, stale)
        self._close_stale(stale)

    def _grant(self, pool: _Pool, stale: list[_Lease]) -> _Lease | str | None:
        """A fresh idle session, or leave to open one, or None (caller holds ``pool.cond``)."""
        if self._closed:
            raise BackendUnavailable(f"partition '{self.name}' is closed")
        while pool.idle:
            lease = pool.idle.pop()
            if self._fresh(lease):
                return lease
            pool.open -= 1
            stale.append(lease)
        if pool.open < self._pool_size:
            pool.open += 1
            return _OPEN_NEW
        return None

    def _hand_out(self, pool: _Pool, stale: list[_Lease]) -> None:
        """Serve waiting threads in arrival order (caller holds ``pool.cond``)."""
        while pool.waiters and not self._closed:
            granted = self._grant(pool, stale)
            if granted is None:
                break
            pool.waiters.popleft().granted = granted
        pool.cond.notify_all()

    def _close_stale(self, stale: list[_Lease]) -> None:
        while stale:
            self._close_lease(stale.pop())

    def _fresh(self, lease: _Lease) -> bool:
        return lease.generation == self._module.generation and lease.epoch == self._pool.epoch

    @staticmethod
    def _token_answers(session: Any) -> bool:
        try:
            session.token.slot.get_token()
            return True
        except PKCS11Error:
            return False

    def _close_lease(self, lease: _Lease) -> None:
        """Best-effort C_CloseSession, never for a session of an earlier initialisation (handle reuse)."""
        module = self._module
        module.enter_shared()
        try:
            if lease.generation == module.generation:
                lease.session.close()  # no C_Logout: pool sessions are opened without a PIN
        except PKCS11Error:
            pass
        finally:
            module.leave_shared()

    def _open_lease(self, epoch: int, startup: bool) -> _Lease:
        """Open a session and log in; re-initialise the module when the token cannot be reached: once at
        run time, up to STARTUP_ATTEMPTS - 1 times (with short pauses) when the partition is created."""
        module, failure = self._module, "CKR_TOKEN_NOT_PRESENT"
        attempts = STARTUP_ATTEMPTS if startup else 2
        if self._pin_refused:
            raise BackendUnavailable(f"Login to {self._where} failed earlier: the token refused the PIN "
                                     f"({self._pin_refused}); reconfigure the partition.")
        for attempt in range(attempts):
            generation = module.generation
            module.enter_shared()
            try:
                session = self._find_token().open(rw=True, attribute_mapper=_MAPPER)
                pin = self._pin.encode()
                rv = module.raw("C_Login", session.handle, CKU_USER, pin, len(pin))
                if rv in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN):
                    return _Lease(session, generation, epoch)
                session.close()
                failure = _CKR_CODES.get(rv, f"CKR_0x{rv:X}")
                if failure in _PIN_REFUSED:
                    self._pin_refused = failure
                    raise BackendUnavailable(f"Login to {self._where} failed: the token refused the PIN "
                                             f"({failure}).")
            except _TokenMissing:
                failure = "CKR_TOKEN_NOT_PRESENT"
            except PKCS11Error as exc:
                failure = _ckr_name(exc)
            finally:
                module.leave_shared()
            if attempt == attempts - 1:
                break
            time.sleep(0.1 * attempt if startup else 0)
            if not module.reinitialize(generation, 0.0 if startup else REINIT_INTERVAL):
                break
        if failure == "CKR_TOKEN_NOT_PRESENT":
            raise BackendUnavailable(f"No {self._where} is present in PKCS#11 module {self._module_path}.")
        raise BackendUnavailable(f"The {self._where} of PKCS#11 module {self._module_path} is not "
                                 f"reachable ({failure}).")

    def _find_token(self) -> Any:
        tokens = []
        for slot in self._module.lib.get_slots(token_present=True):
            if self._slot_id is not None and slot.slot_id != self._slot_id:
                continue
            try:
                token = slot.get_token()
            except (pkcs11.exceptions.TokenNotPresent, pkcs11.exceptions.TokenNotRecognised):
                continue
            if self._token_label is None or token.label == self._token_label:
                tokens.append(token)
        if len(tokens) > 1:
            raise BackendUnavailable(f"{len(tokens)} tokens are labelled '{self._token_label}'; set slot_id.")
        if not tokens:
            raise _TokenMissing
        return tokens[0]

    # -------------------------------------------------------------------------------------------- key objects
    def _keys_labelled(self, session: Any, label: str) -> list[Any]:
        return [obj for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY)
                for obj in session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label})]

    def _key_object(self, session: Any, label: str) -> Any:
        """The private or secret key labelled ``label``."""
        found = self._keys_labelled(session, label)
        if not found:
            session.token.slot.get_token()  # a lost token fails here; C_FindObjects just finds nothing
            raise KeyNotFound(f"no key labelled '{label}' on {self._where}")
        if len(found) > 1:
            raise HsmError(f"{len(found)} keys are labelled '{label}' on {self._where}; labels must be "
                           "unique")
        return found[0]

    def _signing_key(self, lease: _Lease, label: str) -> tuple[Any, dict[int, Any]]:
        """The key labelled ``label`` and its CKA_KEY_TYPE / CKA_SIGN: a remembered handle when it still
        carries the same label and CKA_ID, else a fresh C_FindObjects."""
        wanted = [Attribute.LABEL, Attribute.ID, Attribute.KEY_TYPE, Attribute.SIGN]
        remembered = lease.keys.pop(label, None)
        if remembered is not None:
            try:
                attrs = remembered[0].get_attributes(wanted)
            except PKCS11Error:
                attrs = {}  # the handle is gone: look the label up again
            if attrs.get(Attribute.LABEL) == label and attrs.get(Attribute.ID, b"") == remembered[1]:
                lease.keys[label] = remembered
                return remembered[0], attrs
        key = self._key_object(lease.session, label)
        attrs = key.get_attributes(wanted)
        if len(lease.keys) >= KEY_CACHE_SIZE:
            lease.keys.pop(next(iter(lease.keys)))
        lease.keys[label] = (key, attrs.get(Attribute.ID, b""))
        return key, attrs

    @staticmethod
    def _public_of(session: Any, key: Any, attrs: dict[int, Any]) -> Any | None:
        """The public half of a private key: same CKA_ID (and label), else same label; same key type."""
        label, key_id = key[Attribute.LABEL], attrs.get(Attribute.ID) or None
        searches = [{Attribute.ID: key_id, Attribute.LABEL: label}, {Attribute.ID: key_id}] if key_id else []
        for template in [*searches, {Attribute.LABEL: label}]:
            for candidate in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, **template}):
                if candidate[Attribute.KEY_TYPE] == attrs[Attribute.KEY_TYPE]:
                    return candidate
        return None

    def _describe(self, session: Any, label: str, key: Any, public: Any | None = None) -> KeyInfo:
        """KeyInfo read back from the token (secret values are never read)."""
        attrs = key.get_attributes([Attribute.CLASS, Attribute.KEY_TYPE, Attribute.ID,
                                    *_PRIVATE_FLAGS.values(), *_HISTORY.values()])
        secret = attrs[Attribute.CLASS] == ObjectClass.SECRET_KEY
        if secret:
            attrs |= key.get_attributes([*_PUBLIC_FLAGS.values(), Attribute.VALUE_LEN,
                                         Attribute.ALLOWED_MECHANISMS])
            public_attrs = attrs
        else:
            public = public or self._public_of(session, key, attrs)
            public_attrs = public.get_attributes(list(_PUBLIC_FLAGS.values())) if public is not None else {}
        flags = {f: bool(attrs.get(a, _UNREPORTED.get(f, False)))
                 for f, a in (_PRIVATE_FLAGS | _HISTORY).items()}
        flags |= {f: bool(public_attrs.get(a, False)) for f, a in _PUBLIC_FLAGS.items()}
        ckk = attrs[Attribute.KEY_TYPE]
        key_type = _hmac_type(attrs) if ckk == CKK.GENERIC_SECRET else _KEY_TYPES.get(ckk)
        if key_type is None:
            raise UnsupportedByBackend(f"key '{label}' on {self._where} has an unsupported key type "
                                       f"(0x{ckk:X})")
        if secret:
            size = attrs.get(Attribute.VALUE_LEN, 0) * 8 or _FIXED_SIZES.get(key_type)
            curve, spki = None, None
        else:
            size, curve, spki = _public_facts(key_type, key, public)
        return KeyInfo(label=label, key_type=key_type, attributes=KeyAttributes(**flags), size=size,
                       curve_oid=curve, key_id=attrs.get(Attribute.ID) or None, public_key=spki,
                       created_at=None)

    # ------------------------------------------------------------------------------------------- capabilities
    def _read_mechanisms(self, session: Any) -> tuple[frozenset[int], dict[int, tuple[int, int]]]:
        """The slot's mechanisms, and (min, max) key sizes of those generation and HMAC ones we use."""
        module = self._module
        module.enter_shared()
        try:
            slot = session.token.slot
            mechs = frozenset(int(m) for m in slot.get_mechanisms())
            wanted = {g for _, g, _ in _GENERATION.values()} | {h for _, h, _ in _HMAC.values()}
            infos = {m: slot.get_mechanism_info(m) for m in wanted & mechs}
            return mechs, {m: (i.min_key_length or 0, i.max_key_length or 0) for m, i in infos.items()}
        except PKCS11Error as exc:
            message = f"Reading the mechanisms of {self._where} failed ({_ckr_name(exc)})."
            raise BackendUnavailable(message) from None
        finally:
            module.leave_shared()

    def _fits(self, mechanism: int, size: int) -> bool:
        """``mechanism`` is offered and ``size`` (in its unit) is within its range (max 0: unbounded)."""
        low, high = self._ranges.get(mechanism, (0, 0))
        return mechanism in self._mechanisms and low <= size and (high == 0 or size <= high)

    def _derive_capabilities(self) -> Capabilities:
        dsa_params = M.DSA_PARAMETER_GEN in self._mechanisms
        specs: dict[KeyType, set[int | str]] = {
            KeyType.RSA: {s for s in _RSA_SIZES if self._fits(M.RSA_PKCS_KEY_PAIR_GEN, s)},
            KeyType.DSA: {s for s in _DSA_SIZES if dsa_params and self._fits(M.DSA_KEY_PAIR_GEN, s)},
            KeyType.EC: {oid for oid, (_, bits) in softcrypto.EC_CURVES.items()
                         if self._fits(M.EC_KEY_PAIR_GEN, bits)},
            KeyType.ED: set(softcrypto.ED_CURVES) if M.EC_EDWARDS_KEY_PAIR_GEN in self._mechanisms else set(),
            KeyType.AES: {s for s in _AES_SIZES if self._fits(M.AES_KEY_GEN, s // 8)},  # AES sizes in bytes
        }
        for key_type, (alg, hmac, _) in _HMAC.items():
            if M.GENERIC_SECRET_KEY_GEN in self._mechanisms and self._fits(hmac, alg.digest_size):
                specs[key_type] = {alg.digest_size * 8}
        sign = frozenset((key_type, m) for scheme, key_type in _SCHEME_KEY.items()
                         for m in _all_mechanisms(scheme) if _plan(self._mechanisms, key_type, m) is not None)
        return Capabilities(backend="pkcs11", key_specs={t: frozenset(s) for t, s in specs.items() if s},
                            sign=sign)

    def _check_spec(self, spec: KeySpec) -> tuple[int, Mechanism, bool, int | None]:
        """(PKCS#11 key type, generation mechanism, pair?, size) for ``spec``, else UnsupportedByBackend.
        RSA takes any size in the token's range; EC/ED only the curves of the capability table."""
        if spec.key_type not in _GENERATION:
            raise UnsupportedByBackend(f"{spec.key_type} keys cannot be generated on {self._where}")
        p11_type, mechanism, pair = _GENERATION[spec.key_type]
        size = spec.size or 0
        if spec.key_type in (KeyType.EC, KeyType.ED):
            curves = softcrypto.EC_CURVES if spec.key_type is KeyType.EC else softcrypto.ED_CURVES
            ok, size = spec.curve_oid in curves and mechanism in self._mechanisms, 0
        elif spec.key_type in _HMAC:
            alg, hmac, _ = _HMAC[spec.key_type]
            size = size or alg.digest_size * 8
            ok = size % 8 == 0 and self._fits(hmac, size // 8) and mechanism in self._mechanisms
        elif spec.key_type is KeyType.AES:
            ok = size in _AES_SIZES and self._fits(mechanism, size // 8)
        else:
            ok = self._fits(mechanism, size) and (spec.key_type is KeyType.RSA or M.DSA_PARAMETER_GEN in
                                                  self._mechanisms)
        if not ok:
            what = f"curve {spec.curve_oid}" if spec.curve_oid else f"size {spec.size}"
            raise UnsupportedByBackend(f"{spec.key_type} keys with {what} cannot be generated on "
                                       f"{self._where}")
        return p11_type, mechanism, pair, size or None


# ---------------------------------------------------------------------------------------------------- helpers
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
    encoded = {Attribute.EC_PARAMS: params, Attribute.EC_POINT: OctetString(point).dump()}
    spki = encode_ec_public_key(encoded)  # type: ignore[arg-type]  # it only indexes the two attributes
    return size, oid, spki if point else None


def _flag_names(flags: int, enum: Any) -> list[str]:
    return [member.name for member in enum if member.value and flags & member.value == member.value]


def describe_module(module_path: str) -> list[dict[str, Any]]:
    """Slots, tokens (label, serial, flags) and mechanisms with key-size ranges of a module; no PIN needed."""
    module = _Module.load(module_path)
    module.enter_shared()
    try:
        slots = []
        for slot in module.lib.get_slots():
            entry: dict[str, Any] = {"slot_id": slot.slot_id, "description": slot.slot_description,
                                     "manufacturer": slot.manufacturer_id, "token": None, "mechanisms": [],
                                     "flags": _flag_names(slot.flags, pkcs11.SlotFlag)}
            if slot.flags & pkcs11.SlotFlag.TOKEN_PRESENT:
                token = slot.get_token()
                entry["token"] = {"label": token.label, "serial": token.serial.decode(errors="replace"),
                                  "manufacturer": token.manufacturer_id, "model": token.model,
                                  "flags": _flag_names(token.flags, pkcs11.TokenFlag)}
                for mech in sorted(slot.get_mechanisms(), key=int):
                    info = slot.get_mechanism_info(mech)
                    entry["mechanisms"].append({
                        "name": _ckm_name(int(mech)), "min_key_size": info.min_key_length,
                        "max_key_size": info.max_key_length,
                        "flags": _flag_names(info.flags, pkcs11.MechanismFlag)})
            slots.append(entry)
        return slots
    except PKCS11Error as exc:
        raise BackendUnavailable(f"Listing PKCS#11 module {module_path} failed ({_ckr_name(exc)}).") from None
    finally:
        module.leave_shared()
