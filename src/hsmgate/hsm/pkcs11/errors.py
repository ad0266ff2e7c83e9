"""The one table that turns a PKCS#11 return value into a :mod:`hsmgate.hsm.base` error, and how to recover.

Every python-pkcs11 error of the backend passes :func:`ckr_name` (the ``CKR_`` name behind the exception) and
:func:`translate` (the base.py exception, with the key, mechanism and ``CKR_`` code in its message). The
partition's call loop reads :attr:`CkrMeaning.recovery` to decide whether to retry on a new session, drop the
token's sessions or re-initialise the module.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from pkcs11.exceptions import PKCS11Error

from hsmgate.hsm.base import (
    BackendUnavailable,
    HsmError,
    InvalidInput,
    KeyNotFound,
    OperationNotPermitted,
    UnsupportedByBackend,
)
from hsmgate.hsm.pkcs11.session import CallContext

#: Return values the backend compares against when it calls the module through ctypes.
CKR_OK, CKR_USER_ALREADY_LOGGED_IN, CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x0, 0x100, 0x191

#: ``CKR_`` names of codes python-pkcs11 reports only as a number, and of the answers of a ctypes C_Login.
CKR_NAMES: dict[int, str] = {
    0x05: "CKR_GENERAL_ERROR", 0x0A: "CKR_CANT_LOCK", 0x1B: "CKR_ACTION_PROHIBITED", 0x30: "CKR_DEVICE_ERROR",
    0x32: "CKR_DEVICE_REMOVED", 0x68: "CKR_KEY_FUNCTION_NOT_PERMITTED", 0xA0: "CKR_PIN_INCORRECT",
    0xA1: "CKR_PIN_INVALID", 0xA2: "CKR_PIN_LEN_RANGE", 0xA3: "CKR_PIN_EXPIRED", 0xA4: "CKR_PIN_LOCKED",
    0xB3: "CKR_SESSION_HANDLE_INVALID", 0xE0: "CKR_TOKEN_NOT_PRESENT", 0x102: "CKR_USER_PIN_NOT_INITIALIZED",
    0x140: "CKR_CURVE_NOT_SUPPORTED", 0x190: "CKR_CRYPTOKI_NOT_INITIALIZED",
    # the answers of C_SignInit / C_Sign called through ctypes (Pkcs11Module.sign)
    0x02: "CKR_HOST_MEMORY", 0x03: "CKR_SLOT_ID_INVALID", 0x06: "CKR_FUNCTION_FAILED", 0x07: "CKR_ARGUMENTS_BAD",
    0x20: "CKR_DATA_INVALID", 0x21: "CKR_DATA_LEN_RANGE", 0x31: "CKR_DEVICE_MEMORY",
    0x54: "CKR_FUNCTION_NOT_SUPPORTED", 0x60: "CKR_KEY_HANDLE_INVALID", 0x62: "CKR_KEY_SIZE_RANGE",
    0x63: "CKR_KEY_TYPE_INCONSISTENT", 0x70: "CKR_MECHANISM_INVALID", 0x71: "CKR_MECHANISM_PARAM_INVALID",
    0x82: "CKR_OBJECT_HANDLE_INVALID", 0x90: "CKR_OPERATION_ACTIVE", 0x91: "CKR_OPERATION_NOT_INITIALIZED",
    0xB0: "CKR_SESSION_CLOSED", 0xE1: "CKR_TOKEN_NOT_RECOGNISED", 0x101: "CKR_USER_NOT_LOGGED_IN",
    0x150: "CKR_BUFFER_TOO_SMALL",
}

#: Answers of C_Login that mean the PIN itself was refused. The partition never retries such a PIN: a token
#: locks it after a few wrong tries.
PIN_REFUSED: frozenset[str] = frozenset({"CKR_PIN_INCORRECT", "CKR_PIN_INVALID", "CKR_PIN_LEN_RANGE",
                                         "CKR_PIN_EXPIRED", "CKR_PIN_LOCKED", "CKR_USER_PIN_NOT_INITIALIZED"})


class Recovery(enum.Enum):
    """What the partition does after an error before the call may be tried again."""

    SESSION = "open a new session"
    """The session is stale (closed underneath, logged out): replace it and retry."""
    TOKEN = "drop the token's sessions"
    """The token is unreachable: fail the call and let the next call open new sessions (and, if the token
    cannot be found, re-initialise the module)."""
    MODULE = "re-initialise the module"
    """The module was finalised underneath: initialise it again and retry."""


class CkrMeaning(NamedTuple):
    """What one ``CKR_`` code means to the backend."""

    error: type[HsmError]
    """The base.py exception a caller gets."""
    reason: str
    """The reason, in words, put into the exception's message."""
    recovery: Recovery | None
    """None: the error is the call's answer, no retry."""


_GONE = CkrMeaning(BackendUnavailable, "the token is not reachable", Recovery.TOKEN)
_STALE = CkrMeaning(BackendUnavailable, "the session was lost", Recovery.SESSION)
_REFUSED = CkrMeaning(UnsupportedByBackend, "the token refused the key template", None)
_FORBIDDEN = CkrMeaning(OperationNotPermitted, "the key's attributes forbid it", None)
_TYPE_MISMATCH = CkrMeaning(UnsupportedByBackend, "the key type does not fit the mechanism", None)

#: ``CKR_`` name -> its meaning. A code not listed is an :class:`HsmError` without recovery (:data:`UNKNOWN`).
CKR_MEANINGS: dict[str, CkrMeaning] = {
    "CKR_NO_SUCH_KEY": CkrMeaning(KeyNotFound, "no such key", None),
    "CKR_OBJECT_HANDLE_INVALID": CkrMeaning(KeyNotFound, "the key was removed meanwhile", None),
    "CKR_KEY_HANDLE_INVALID": CkrMeaning(KeyNotFound, "the key was removed meanwhile", None),
    "CKR_MECHANISM_INVALID": CkrMeaning(UnsupportedByBackend, "the token does not offer this mechanism",
                                        None),
    "CKR_MECHANISM_PARAM_INVALID": CkrMeaning(UnsupportedByBackend,
                                              "the token refused the mechanism parameters", None),
    "CKR_FUNCTION_NOT_SUPPORTED": CkrMeaning(UnsupportedByBackend, "the module does not implement it", None),
    "CKR_KEY_SIZE_RANGE": CkrMeaning(UnsupportedByBackend, "the key size is outside the token's range", None),
    "CKR_DOMAIN_PARAMS_INVALID": CkrMeaning(UnsupportedByBackend,
                                            "the token does not support these parameters", None),
    "CKR_CURVE_NOT_SUPPORTED": CkrMeaning(UnsupportedByBackend, "the token does not support this curve",
                                          None),
    "CKR_KEY_TYPE_INCONSISTENT": _TYPE_MISMATCH,
    "CKR_KEY_NOT_WRAPPABLE": CkrMeaning(UnsupportedByBackend, "the token cannot wrap this key", None),
    "CKR_WRAPPING_KEY_TYPE_INCONSISTENT": _TYPE_MISMATCH,
    "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT": _TYPE_MISMATCH,
    "CKR_KEY_INDIGESTIBLE": CkrMeaning(UnsupportedByBackend, "the token cannot process this key", None),
    **dict.fromkeys(("CKR_TEMPLATE_INCONSISTENT", "CKR_TEMPLATE_INCOMPLETE", "CKR_ATTRIBUTE_TYPE_INVALID",
                     "CKR_ATTRIBUTE_VALUE_INVALID"), _REFUSED),
    **dict.fromkeys(("CKR_KEY_FUNCTION_NOT_PERMITTED", "CKR_ACTION_PROHIBITED", "CKR_ATTRIBUTE_READ_ONLY",
                     "CKR_ATTRIBUTE_SENSITIVE", "CKR_KEY_UNEXTRACTABLE"), _FORBIDDEN),
    "CKR_TOKEN_WRITE_PROTECTED": CkrMeaning(OperationNotPermitted, "the token is write-protected", None),
    "CKR_DATA_LEN_RANGE": CkrMeaning(InvalidInput, "the data length does not fit the key and mechanism",
                                     None),
    "CKR_DATA_INVALID": CkrMeaning(InvalidInput, "the token refused the data", None),
    "CKR_ARGUMENTS_BAD": CkrMeaning(InvalidInput, "the token refused the arguments", None),
    "CKR_SESSION_COUNT": CkrMeaning(BackendUnavailable, "the token has no free session", None),
    **dict.fromkeys(PIN_REFUSED, CkrMeaning(BackendUnavailable, "the token refused the PIN", None)),
    **dict.fromkeys(("CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_CLOSED", "CKR_USER_NOT_LOGGED_IN"), _STALE),
    "CKR_CRYPTOKI_NOT_INITIALIZED": CkrMeaning(BackendUnavailable, "the module is not initialised",
                                               Recovery.MODULE),
    **dict.fromkeys(("CKR_DEVICE_REMOVED", "CKR_TOKEN_NOT_PRESENT", "CKR_TOKEN_NOT_RECOGNISED",
                     "CKR_DEVICE_ERROR", "CKR_DEVICE_MEMORY", "CKR_GENERAL_ERROR", "CKR_SLOT_ID_INVALID"),
                    _GONE),
}

#: The meaning of a code :data:`CKR_MEANINGS` does not list.
UNKNOWN = CkrMeaning(HsmError, "the token reported an error", None)


def ckr_name(exc: PKCS11Error) -> str:
    """The ``CKR_`` name behind a python-pkcs11 exception (its class name, or the code in its message)."""
    if type(exc) is not PKCS11Error:
        words = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type(exc).__name__)
        return "CKR_" + words.upper()
    if "not initialized" in str(exc):
        return "CKR_CRYPTOKI_NOT_INITIALIZED"
    code = re.search(r"0x([0-9a-fA-F]+)", str(exc))
    return CKR_NAMES.get(int(code.group(1), 16), f"CKR_0x{code.group(1)}") if code else "CKR_GENERAL_ERROR"


#: Codes that say a key's handle is not valid (any more). A key deleted meanwhile — or every handle of a
#: token that went away: then the token does not answer either, and it is the token that is gone.
HANDLE_GONE = frozenset({"CKR_OBJECT_HANDLE_INVALID", "CKR_KEY_HANDLE_INVALID"})


def translate(ctx: CallContext, ckr: str, *, token_answers: bool = False, token_gone: bool = False) -> HsmError:
    """The base.py exception for ``ckr``, naming the action, key and mechanism of ``ctx``. With
    ``token_answers``, an 'unreachable' code is the call's own failure (the token still answers);
    with ``token_gone``, a code of :data:`HANDLE_GONE` came with the token going away."""
    kind, reason, recovery = CKR_MEANINGS.get(ckr, UNKNOWN)
    if token_answers and recovery is Recovery.TOKEN:
        kind, reason = HsmError, "the token could not perform it"
    if token_gone:
        kind, reason = _GONE.error, _GONE.reason
    subject = f"{ctx.action} of key '{ctx.label}'" if ctx.label is not None else ctx.action
    via = f" with {ctx.mechanism}" if ctx.mechanism else ""
    return kind(f"{subject}{via} failed: {reason} ({ckr}).")
