"""The process-wide PKCS#11 module: python-pkcs11's ``lib`` re-initialised with CKF_OS_LOCKING_OK through
ctypes, a shared/exclusive gate for re-initialisation, :meth:`Pkcs11Module.sign` (C_SignInit + C_Sign on
any session with a remembered object handle) and :func:`describe_module`."""

from __future__ import annotations

import ctypes
import enum
import os
import threading
import time
from typing import ClassVar, TypedDict

import pkcs11
from pkcs11.exceptions import PKCS11Error

from hsmgate.hsm.base import BackendUnavailable, ModuleUnusable
from hsmgate.hsm.pkcs11.errors import CKR_CRYPTOKI_ALREADY_INITIALIZED, CKR_OK, ckr_name
from hsmgate.hsm.pkcs11.mechanisms import ckm_name

#: CK_C_INITIALIZE_ARGS.flags: the module may use the operating system's locking primitives.
CKF_OS_LOCKING_OK = 0x2

# ---------------------------------------------------------------------------------------- process-wide module
_FUNCTION_LIST = ("C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList",
                  "C_GetSlotInfo", "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo",
                  "C_InitToken", "C_InitPIN", "C_SetPIN", "C_OpenSession", "C_CloseSession",
                  "C_CloseAllSessions", "C_GetSessionInfo", "C_GetOperationState", "C_SetOperationState",
                  "C_Login", "C_Logout", "C_CreateObject", "C_CopyObject", "C_DestroyObject", "C_GetObjectSize",
                  "C_GetAttributeValue", "C_SetAttributeValue", "C_FindObjectsInit", "C_FindObjects",
                  "C_FindObjectsFinal", "C_EncryptInit", "C_Encrypt", "C_EncryptUpdate", "C_EncryptFinal",
                  "C_DecryptInit", "C_Decrypt", "C_DecryptUpdate", "C_DecryptFinal", "C_DigestInit", "C_Digest",
                  "C_DigestUpdate", "C_DigestKey", "C_DigestFinal", "C_SignInit", "C_Sign")


class _CkMechanismInfo(ctypes.Structure):
    _fields_ = [("min_key_size", ctypes.c_ulong), ("max_key_size", ctypes.c_ulong), ("flags", ctypes.c_ulong)]


class _CkAttribute(ctypes.Structure):
    _fields_ = [("type", ctypes.c_ulong), ("value", ctypes.c_void_p), ("value_len", ctypes.c_ulong)]


class _CkMechanism(ctypes.Structure):
    _fields_ = [("mechanism", ctypes.c_ulong), ("parameter", ctypes.c_char_p), ("parameter_len", ctypes.c_ulong)]


_PROTOTYPES = {"C_Initialize": (ctypes.c_void_p,), "C_Finalize": (ctypes.c_void_p,),
               "C_Login": (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong),
               "C_CloseAllSessions": (ctypes.c_ulong,),
               "C_GetMechanismInfo": (ctypes.c_ulong, ctypes.c_ulong, ctypes.POINTER(_CkMechanismInfo)),
               "C_GetAttributeValue": (ctypes.c_ulong, ctypes.c_ulong, ctypes.POINTER(_CkAttribute), ctypes.c_ulong),
               "C_SignInit": (ctypes.c_ulong, ctypes.POINTER(_CkMechanism), ctypes.c_ulong),
               "C_Sign": (ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
                          ctypes.POINTER(ctypes.c_ulong))}
#: CKR_BUFFER_TOO_SMALL: C_Sign wants a larger output buffer (the operation stays active).
CKR_BUFFER_TOO_SMALL = 0x150
#: C_GetAttributeValue: the object handle is not valid (any more), or an attribute does not fit its buffer.
_NOT_THE_SAME = frozenset({0x82, 0x60, CKR_BUFFER_TOO_SMALL})
#: Output buffer of :meth:`Pkcs11Module.sign`: an RSA-8192 signature fits; larger ones take a second C_Sign.
SIGNATURE_BUFFER = 1024


class _CkFunctionList(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte),
                *((name, ctypes.c_void_p) for name in _FUNCTION_LIST)]


class _CkInitializeArgs(ctypes.Structure):
    _fields_ = [("create_mutex", ctypes.c_void_p), ("destroy_mutex", ctypes.c_void_p),
                ("lock_mutex", ctypes.c_void_p), ("unlock_mutex", ctypes.c_void_p),
                ("flags", ctypes.c_ulong), ("reserved", ctypes.c_void_p)]


class Pkcs11Module:
    """One PKCS#11 module file in this process: python-pkcs11's ``lib``, the locking mode, and a gate that
    lets calls run side by side (shared) but a re-initialisation only alone (exclusive).

    ``generation`` counts the re-initialisations: sessions opened in an earlier generation are dead. Get the
    instance with :meth:`load`, never by calling the class."""

    _registry: ClassVar[dict[str, Pkcs11Module]] = {}
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
    def load(cls, module_path: str) -> Pkcs11Module:
        """The module for ``module_path`` in this process, loaded on first use."""
        path = os.path.realpath(module_path)
        if not os.path.isfile(path):
            raise ModuleUnusable(f"PKCS#11 module {module_path} does not exist.")
        with cls._registry_lock:
            module = cls._registry.get(path)
            if module is None:
                try:
                    module = cls._registry[path] = cls(path)
                except (PKCS11Error, OSError, AttributeError) as exc:
                    message = f"PKCS#11 module {module_path} cannot be used ({exc})."
                    raise ModuleUnusable(message) from None
        module.ensure_process()
        return module

    def raw(self, function: str, *args: object) -> int:
        """Call ``function`` of the module's function list directly; returns the CK_RV."""
        return int(self._functions[function](*args))

    def sign(self, session_handle: int, mechanism: int, param: bytes | None, key_handle: int, data: bytes) -> bytes:
        """C_SignInit + C_Sign of ``data`` with the object ``key_handle`` on the session ``session_handle``.

        Object handles of token objects are valid in every session of the process (PKCS#11 v2.40 §6.7.5;
        SoftHSM2 keeps them per slot, not per session), so a handle found once serves every pooled session:
        python-pkcs11 binds its key objects to the session that found them. The GIL is released during
        both calls (ctypes). Raises PKCS11Error naming the CK_RV (``ckr_name`` understands it)."""
        mech = _CkMechanism(mechanism, param, len(param) if param else 0)
        rv = self._functions["C_SignInit"](session_handle, ctypes.byref(mech), key_handle)
        if rv != CKR_OK:
            raise PKCS11Error(f"C_SignInit failed (0x{rv:X})")
        size = ctypes.c_ulong(SIGNATURE_BUFFER)
        out = ctypes.create_string_buffer(SIGNATURE_BUFFER)
        rv = self._functions["C_Sign"](session_handle, data, len(data), out, ctypes.byref(size))
        if rv == CKR_BUFFER_TOO_SMALL:
            out = ctypes.create_string_buffer(size.value)
            rv = self._functions["C_Sign"](session_handle, data, len(data), out, ctypes.byref(size))
        if rv != CKR_OK:
            raise PKCS11Error(f"C_Sign failed (0x{rv:X})")
        return out.raw[:size.value]

    def has_attributes(self, session_handle: int, object_handle: int, expected: dict[int, bytes]) -> bool:
        """True when the object ``object_handle`` still exists and its attributes (CKA_ -> raw value) are
        exactly ``expected``: one C_GetAttributeValue. False when the handle is not valid or a value differs;
        other errors (session, token) raise PKCS11Error."""
        buffers = [ctypes.create_string_buffer(max(len(value), 1)) for value in expected.values()]
        template = (_CkAttribute * len(expected))(*(
            _CkAttribute(kind, ctypes.cast(buffer, ctypes.c_void_p), len(value))
            for (kind, value), buffer in zip(expected.items(), buffers, strict=True)))
        rv = self._functions["C_GetAttributeValue"](session_handle, object_handle, template, len(expected))
        if rv in _NOT_THE_SAME:
            return False
        if rv != CKR_OK:
            raise PKCS11Error(f"C_GetAttributeValue failed (0x{rv:X})")
        return all(attribute.value_len == len(value) and buffer.raw[:len(value)] == value
                   for attribute, value, buffer in zip(template, expected.values(), buffers, strict=True))

    def mechanism_info(self, slot_id: int, mechanism: int) -> tuple[int, int, int]:
        """(min key size, max key size, CKF_ flags) of ``mechanism`` in slot ``slot_id``, by
        C_GetMechanismInfo on a zeroed CK_MECHANISM_INFO. python-pkcs11 0.10.1 passes an uninitialised one,
        and SoftHSM2 ORs the flags of some mechanisms (CKM_AES_GCM) into whatever it holds: python-pkcs11's
        flags then carry stack garbage."""
        info = _CkMechanismInfo()
        rv = self.raw("C_GetMechanismInfo", slot_id, mechanism, ctypes.byref(info))
        if rv != CKR_OK:
            raise PKCS11Error(f"C_GetMechanismInfo failed (0x{rv:X}) for {ckm_name(mechanism)}")
        return int(info.min_key_size), int(info.max_key_size), int(info.flags)

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


# ----------------------------------------------------------------------------------------- describe_module
class MechanismDescription(TypedDict):
    """One mechanism of a token, as C_GetMechanismInfo reports it."""

    name: str  # CKM_ name (ckm_name)
    code: int  # the CKM_ number
    min_key_size: int  # ulMinKeySize: bits or bytes, as the mechanism defines
    max_key_size: int
    flags: list[str]  # CKF_ names without the prefix, one per bit set, in bit order


class TokenDescription(TypedDict):
    """The token in a slot (C_GetTokenInfo); text fields as the token pads them."""

    label: str
    serial: str
    manufacturer: str
    model: str
    flags: list[str]


class SlotDescription(TypedDict):
    """One slot of a module (C_GetSlotInfo), its token and the token's mechanisms."""

    slot_id: int
    description: str
    manufacturer: str
    token: TokenDescription | None  # None: no token present
    mechanisms: list[MechanismDescription]
    flags: list[str]


def flag_names(value: int, flags: type[enum.IntFlag]) -> list[str]:
    """The names of the bits set in ``value``, one per bit, lowest first; a bit ``flags`` has no member for
    is given in hex (``0x40000000``), so nothing set is hidden and nothing unset is shown."""
    known = {member.value: member.name or "" for member in flags
             if member.value > 0 and member.value & (member.value - 1) == 0}
    return [known.get(1 << bit, f"0x{1 << bit:X}") for bit in range(value.bit_length()) if value >> bit & 1]


def describe_module(module_path: str) -> list[SlotDescription]:
    """Slots, tokens (label, serial, flags) and mechanisms with key-size ranges of a module; no PIN needed."""
    module = Pkcs11Module.load(module_path)
    module.enter_shared()
    try:
        slots: list[SlotDescription] = []
        for slot in module.lib.get_slots():
            entry = SlotDescription(slot_id=slot.slot_id, description=slot.slot_description,
                                    manufacturer=slot.manufacturer_id, token=None, mechanisms=[],
                                    flags=flag_names(slot.flags, pkcs11.SlotFlag))
            if slot.flags & pkcs11.SlotFlag.TOKEN_PRESENT:
                token = slot.get_token()
                entry["token"] = TokenDescription(
                    label=token.label, serial=token.serial.decode(errors="replace"),
                    manufacturer=token.manufacturer_id, model=token.model,
                    flags=flag_names(token.flags, pkcs11.TokenFlag))
                for mech in sorted(int(m) for m in slot.get_mechanisms()):
                    low, high, flags = module.mechanism_info(slot.slot_id, mech)
                    entry["mechanisms"].append(MechanismDescription(
                        name=ckm_name(mech), code=mech, min_key_size=low, max_key_size=high,
                        flags=flag_names(flags, pkcs11.MechanismFlag)))
            slots.append(entry)
        return slots
    except PKCS11Error as exc:
        raise BackendUnavailable(f"Listing PKCS#11 module {module_path} failed ({ckr_name(exc)}).") from None
    finally:
        module.leave_shared()
