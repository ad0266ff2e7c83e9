"""The optional operations of the PKCS#11 backend: encrypt/decrypt, wrap/unwrap, HMAC, import and export.

Everything runs on the token (C_Encrypt, C_WrapKey, C_Sign with CKM_SHAx_HMAC, C_CreateObject ...); what the
token cannot do is refused with :class:`UnsupportedByBackend`, never done in software with key material read
out of the token. Only data is handled here: the PKCS#7 padding of AES-ECB-PAD and the parsing of key material
a caller imports. Export reads the attributes of extractable, non-sensitive keys, which PKCS#11 allows.

What is declared: the mechanisms the token lists, each confirmed once by a round trip with throwaway session
keys (:meth:`Pkcs11Operations._probe_operations`), so a module that lists CKM_RSA_PKCS_OAEP but accepts only
SHA-1 (SoftHSM2) declares OAEP with SHA-1 only. Semantics follow the soft backend (``softcipher``): the backend
makes the IV (12 bytes for GCM, one block for CBC and CTR, a 128-bit counter for CTR), AEAD tags come apart
from the ciphertext, raw RSA decryption returns the whole modulus-sized block, and a private key travels inside
a wrapped blob as PKCS#8. A failed integrity check - which SoftHSM2 reports as CKR_GENERAL_ERROR - is
:class:`DecryptFailed` as long as the token still answers.
"""

from __future__ import annotations

import secrets
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import pkcs11
from asn1crypto.core import ObjectIdentifier, OctetString
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from pkcs11 import Attribute, GCMParams, ObjectClass
from pkcs11 import KeyType as CKK
from pkcs11.exceptions import PKCS11Error

from hsmgate.hsm import softcrypto
from hsmgate.hsm.base import (
    Capabilities,
    CipherMechanism,
    CipherMode,
    DecryptFailed,
    EncryptResult,
    ExportedKey,
    HashAlg,
    HsmError,
    InvalidInput,
    KeyAttributes,
    KeyExists,
    KeyInfo,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    UnsupportedByBackend,
    WrapMechanism,
    WrapMode,
)
from hsmgate.hsm.pkcs11.keyobjects import OPTIONAL_ATTRIBUTES, TEMPLATE_REFUSED, curve_oid, hmac_type
from hsmgate.hsm.pkcs11.mechanisms import CKM_CAMELLIA_KEY_GEN, HASHES, HMAC_KEYS, KEY_TYPES, M, ckm_name
from hsmgate.hsm.pkcs11.session import CallContext, Lease, SessionCall
from hsmgate.hsm.softcipher import GCM_TAG_BITS, OAEP_HASHES

T = TypeVar("T")
CKM_CAMELLIA_ECB, CKM_CAMELLIA_CBC, CKM_CAMELLIA_CBC_PAD = 0x551, 0x552, 0x555


@dataclass(frozen=True, slots=True)
class _Cipher:
    """How a symmetric mode runs on a token."""

    key_type: KeyType
    ckm: int
    iv_bytes: int | None  # IV the backend makes; None: no IV
    block: int            # block size in bytes
    aligned: bool         # data must be a multiple of the block (no padding)
    pad_here: bool = False  # PKCS#7 padding done here (ECB-PAD: data, not key material)


_SYMMETRIC: dict[CipherMode, _Cipher] = {
    CipherMode.AES_GCM: _Cipher(KeyType.AES, M.AES_GCM, 12, 16, False),
    CipherMode.AES_CBC: _Cipher(KeyType.AES, M.AES_CBC, 16, 16, True),
    CipherMode.AES_CBC_PAD: _Cipher(KeyType.AES, M.AES_CBC_PAD, 16, 16, False),
    CipherMode.AES_CTR: _Cipher(KeyType.AES, M.AES_CTR, 16, 16, False),
    CipherMode.AES_ECB: _Cipher(KeyType.AES, M.AES_ECB, None, 16, True),
    CipherMode.AES_ECB_PAD: _Cipher(KeyType.AES, M.AES_ECB, None, 16, False, pad_here=True),
    CipherMode.TDEA_CBC: _Cipher(KeyType.TDEA, M.DES3_CBC, 8, 8, True),
    CipherMode.TDEA_CBC_PAD: _Cipher(KeyType.TDEA, M.DES3_CBC_PAD, 8, 8, False),
    CipherMode.TDEA_ECB: _Cipher(KeyType.TDEA, M.DES3_ECB, None, 8, True),
    CipherMode.CAMELLIA_CBC: _Cipher(KeyType.CAMELLIA, CKM_CAMELLIA_CBC, 16, 16, True),
    CipherMode.CAMELLIA_CBC_PAD: _Cipher(KeyType.CAMELLIA, CKM_CAMELLIA_CBC_PAD, 16, 16, False),
    CipherMode.CAMELLIA_ECB: _Cipher(KeyType.CAMELLIA, CKM_CAMELLIA_ECB, None, 16, True),
}
_RSA_CIPHERS = {CipherMode.RSA_PKCS1V15: M.RSA_PKCS, CipherMode.RSA_OAEP: M.RSA_PKCS_OAEP,
                CipherMode.RSA_RAW: M.RSA_X_509}
_AES_WRAPS = {WrapMode.AES_KW: M.AES_KEY_WRAP, WrapMode.AES_KWP: M.AES_KEY_WRAP_PAD}  # 0x2109, 0x210A
_RSA_WRAPS = {WrapMode.RSA_PKCS1V15: M.RSA_PKCS, WrapMode.RSA_OAEP: M.RSA_PKCS_OAEP}
#: Secret key types: PKCS#11 key type and the lengths (bytes) a raw secret may have (None: any, checked
#: against the HMAC mechanism's range).
_SECRETS: dict[KeyType, tuple[int, tuple[int, ...] | None]] = {
    KeyType.AES: (CKK.AES, (16, 24, 32)), KeyType.CAMELLIA: (CKK.CAMELLIA, (16, 24, 32)),
    KeyType.TDEA: (CKK.DES3, (24,)), **{t: (CKK.GENERIC_SECRET, None) for t in HMAC_KEYS},
}
_PRIVATE_TYPES = {KeyType.RSA: CKK.RSA, KeyType.EC: CKK.EC, KeyType.ED: CKK.EC_EDWARDS, KeyType.DSA: CKK.DSA}
#: Errors of a decryption or unwrap that mean "the data does not decrypt": SoftHSM2 answers a bad GCM tag, a bad
#: OAEP/PKCS#1 block and a bad key-wrap IV with CKR_GENERAL_ERROR.
_INTEGRITY = (pkcs11.exceptions.GeneralError, pkcs11.exceptions.EncryptedDataInvalid,
              pkcs11.exceptions.EncryptedDataLenRange, pkcs11.exceptions.WrappedKeyInvalid,
              pkcs11.exceptions.WrappedKeyLenRange, pkcs11.exceptions.DataInvalid,
              pkcs11.exceptions.DataLenRange)
_ED_CURVES = {softcrypto.ED25519_OID: ed25519.Ed25519PrivateKey, softcrypto.ED448_OID: ed448.Ed448PrivateKey}
_PROBE_DATA = b"hsmgate probe, 32 bytes long...."


def _oaep_param(alg: HashAlg) -> tuple[int, int, None]:
    row = HASHES[alg]
    return row.digest, row.mgf, None


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _pkcs8(private: Any) -> bytes:
    return private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,  # type: ignore[no-any-return]
                                 serialization.NoEncryption())


class Pkcs11Operations:
    """Mixin of :class:`~hsmgate.hsm.pkcs11.partition.Pkcs11Partition` with the optional operations; it uses the
    partition's session pool (``_call``), key look-up and ``_describe``."""

    # provided by Pkcs11Partition (python-pkcs11 sessions and key objects are untyped, hence Any)
    _mechanisms: frozenset[int]
    _capabilities: Capabilities
    _where: str
    _generate_lock: threading.Lock

    if TYPE_CHECKING:
        def capabilities(self) -> Capabilities: ...
        def _call(self, action: str, label: str | None, run: SessionCall[T]) -> T: ...
        def _key_object(self, session: Any, label: str, *, public_only: bool = True) -> Any: ...
        def _keys_labelled(self, session: Any, label: str) -> list[Any]: ...
        @staticmethod
        def _public_only(session: Any, label: str) -> list[Any]: ...
        @staticmethod
        def _public_of(session: Any, key: Any, attrs: dict[int, Any]) -> Any | None: ...
        def _describe(self, session: Any, label: str, key: Any, public: Any | None = None) -> KeyInfo: ...
        def _fits(self, mechanism: int, size: int) -> bool: ...
        @staticmethod
        def _token_answers(session: Any) -> bool: ...

    # ------------------------------------------------------------------------------------- encrypt / decrypt
    def encrypt(self, label: str, mechanism: CipherMechanism, data: bytes, *, iv: bytes | None = None,
                aad: bytes | None = None) -> EncryptResult:
        if iv is not None:
            raise InvalidInput("the PKCS#11 backend generates initialization vectors itself")

        def run(lease: Lease, ctx: CallContext) -> EncryptResult:
            key, key_type = self._cipher_key(lease.session, label, mechanism, decrypt=False)
            if key_type is KeyType.RSA:
                ckm, param = self._rsa_cipher(mechanism)
                ctx.mechanism = ckm_name(ckm)
                payload = data
                if mechanism.mode is CipherMode.RSA_RAW:
                    n = int.from_bytes(key[Attribute.MODULUS], "big")
                    if int.from_bytes(data, "big") >= n or len(data) > (n.bit_length() + 7) // 8:
                        raise InvalidInput("the payload, read as a big-endian number, must be smaller than the "
                                           "modulus")
                    payload = data.rjust((n.bit_length() + 7) // 8, b"\0")
                return EncryptResult(bytes(key.encrypt(payload, mechanism=M(ckm), mechanism_param=param)))
            row = _SYMMETRIC[mechanism.mode]
            ctx.mechanism = ckm_name(row.ckm)
            if row.pad_here:
                padder = sym_padding.PKCS7(row.block * 8).padder()
                data_ = padder.update(data) + padder.finalize()
            else:
                data_ = data
            if row.aligned and len(data_) % row.block:
                raise InvalidInput(f"{mechanism.mode} needs a payload that is a multiple of {row.block} bytes, got "
                                   f"{len(data_)} bytes")
            new_iv = secrets.token_bytes(row.iv_bytes) if row.iv_bytes else None
            param = self._symmetric_param(mechanism, row, new_iv, aad)
            out = bytes(key.encrypt(data_, mechanism=M(row.ckm), mechanism_param=param))
            if mechanism.mode is CipherMode.AES_GCM:
                tag_bytes = (mechanism.tag_bits or 128) // 8
                return EncryptResult(out[:-tag_bytes], new_iv, out[-tag_bytes:])
            return EncryptResult(out, new_iv)
        return self._call("encryption", label, run)

    def decrypt(self, label: str, mechanism: CipherMechanism, data: bytes, *, iv: bytes | None = None,
                aad: bytes | None = None, tag: bytes | None = None) -> bytes:
        def run(lease: Lease, ctx: CallContext) -> bytes:
            key, key_type = self._cipher_key(lease.session, label, mechanism, decrypt=True)
            if key_type is KeyType.RSA:
                ckm, param = self._rsa_cipher(mechanism)
                ctx.mechanism = ckm_name(ckm)
                size = (int.from_bytes(key[Attribute.MODULUS], "big").bit_length() + 7) // 8
                if len(data) != size:
                    raise DecryptFailed(f"decryption failed: the ciphertext must be {size} bytes for this key")
                plain = bytes(self._integrity(lease.session, mechanism.mode,
                                              lambda: key.decrypt(data, mechanism=M(ckm), mechanism_param=param)))
                return plain.rjust(size, b"\0") if mechanism.mode is CipherMode.RSA_RAW else plain
            row = _SYMMETRIC[mechanism.mode]
            ctx.mechanism = ckm_name(row.ckm)
            payload = data
            if row.iv_bytes is not None:
                if not iv or (len(iv) != row.iv_bytes and mechanism.mode is not CipherMode.AES_GCM):
                    raise DecryptFailed(f"{mechanism.mode} needs an initialization vector of {row.iv_bytes} bytes")
                if len(iv) > 12 and mechanism.mode is CipherMode.AES_GCM:
                    raise UnsupportedByBackend("the PKCS#11 backend takes GCM nonces of at most 12 bytes")
            if mechanism.mode is CipherMode.AES_GCM:
                tag_bytes = (mechanism.tag_bits or 128) // 8
                if tag is None or len(tag) != tag_bytes:
                    raise DecryptFailed(f"the GCM tag must be {tag_bytes} bytes")
                payload = data + tag
            elif mechanism.mode is not CipherMode.AES_CTR and len(data) % row.block:
                raise DecryptFailed(f"decryption failed: {mechanism.mode} ciphertext must be a multiple of "
                                    f"{row.block} bytes")
            param = self._symmetric_param(mechanism, row, iv, aad)
            plain = bytes(self._integrity(lease.session, mechanism.mode,
                                          lambda: key.decrypt(payload, mechanism=M(row.ckm), mechanism_param=param)))
            if row.pad_here:
                try:
                    unpadder = sym_padding.PKCS7(row.block * 8).unpadder()
                    plain = unpadder.update(plain) + unpadder.finalize()
                except ValueError:
                    raise DecryptFailed("decryption failed: bad padding (wrong key or a damaged ciphertext)") from None
            return plain
        return self._call("decryption", label, run)

    def _cipher_key(self, session: Any, label: str, mechanism: CipherMechanism, *, decrypt: bool) -> tuple[Any, KeyType]:
        """The object that runs the operation (for RSA encryption the public key), checked against the declared
        capabilities and CKA_ENCRYPT / CKA_DECRYPT."""
        key = self._key_object(session, label)
        attrs = key.get_attributes([Attribute.CLASS, Attribute.KEY_TYPE, Attribute.ID])
        key_type = KEY_TYPES.get(attrs[Attribute.KEY_TYPE])
        if key_type is None or not self.capabilities().can_encrypt(key_type, mechanism):
            raise UnsupportedByBackend(f"key '{label}' ({key_type or 'unknown type'}) cannot be used with "
                                       f"{mechanism.mode} on {self._where}")
        if key_type is KeyType.RSA:
            key = self._rsa_half(session, key, attrs, label, private=decrypt)
        flag, name = (Attribute.DECRYPT, "decrypt") if decrypt else (Attribute.ENCRYPT, "encrypt")
        if not key.get_attributes([flag]).get(flag):
            raise OperationNotPermitted(f"key '{label}' may not {name} (CKA_{name.upper()} is false)")
        return key, key_type

    @staticmethod
    def _rsa_cipher(mechanism: CipherMechanism) -> tuple[int, Any]:
        ckm = _RSA_CIPHERS[mechanism.mode]
        if mechanism.mode is CipherMode.RSA_OAEP:
            return ckm, _oaep_param(mechanism.hash or HashAlg.SHA1)
        return ckm, None

    @staticmethod
    def _symmetric_param(mechanism: CipherMechanism, row: _Cipher, iv: bytes | None, aad: bytes | None) -> Any:
        if mechanism.mode is CipherMode.AES_GCM:
            bits = mechanism.tag_bits or 128
            if bits not in GCM_TAG_BITS:
                raise InvalidInput(f"GCM tag length {bits} is not one of {', '.join(map(str, GCM_TAG_BITS))}")
            return GCMParams(iv or b"", aad or None, bits)
        if aad:
            raise InvalidInput(f"{mechanism.mode} takes no additional authenticated data")
        if mechanism.mode is CipherMode.AES_CTR:
            return struct.pack("L16s", 128, iv or b"")  # CK_AES_CTR_PARAMS: the whole block is the counter
        return iv

    def _integrity(self, session: Any, what: object, operation: Callable[[], T]) -> T:
        """Run a decryption or unwrap; an integrity failure is DecryptFailed while the token still answers."""
        try:
            return operation()
        except _INTEGRITY as exc:
            if isinstance(exc, pkcs11.exceptions.GeneralError) and not self._token_answers(session):
                raise
            raise DecryptFailed(f"decryption failed: {what} found the data damaged or made with another key or "
                                "IV") from None

    # ------------------------------------------------------------------------------------------- HMAC
    def hmac(self, label: str, data: bytes) -> bytes:
        def run(lease: Lease, ctx: CallContext) -> bytes:
            key, ckm = self._hmac_key(lease.session, label, Attribute.SIGN, ctx)
            return bytes(key.sign(data, mechanism=ckm))
        return self._call("HMAC", label, run)

    def hmac_verify(self, label: str, data: bytes, mac: bytes) -> bool:
        def run(lease: Lease, ctx: CallContext) -> bool:
            key, ckm = self._hmac_key(lease.session, label, Attribute.VERIFY, ctx)
            return bool(key.verify(data, mac, mechanism=ckm))  # C_Verify: the token compares
        return self._call("HMAC verification", label, run)

    def _hmac_key(self, session: Any, label: str, flag: Attribute, ctx: CallContext) -> tuple[Any, Any]:
        key = self._key_object(session, label)
        attrs = key.get_attributes([Attribute.CLASS, Attribute.KEY_TYPE, Attribute.ALLOWED_MECHANISMS,
                                    Attribute.VALUE_LEN, flag])
        ckk = attrs[Attribute.KEY_TYPE]
        key_type = hmac_type(attrs) if ckk == CKK.GENERIC_SECRET else KEY_TYPES.get(ckk)
        if key_type not in self.capabilities().hmac:
            raise UnsupportedByBackend(f"key '{label}' ({key_type or 'unknown type'}) is not an HMAC key this token "
                                       "can use")
        if not attrs.get(flag):
            name = "sign" if flag == Attribute.SIGN else "verify"
            raise OperationNotPermitted(f"key '{label}' may not {name} (CKA_{name.upper()} is false)")
        ckm = HMAC_KEYS[key_type].mechanism
        ctx.mechanism = ckm_name(ckm)
        return key, ckm

    # ------------------------------------------------------------------------------------- wrap / unwrap
    def wrap(self, wrapping_label: str, mechanism: WrapMechanism, target_label: str) -> bytes:
        def run(lease: Lease, ctx: CallContext) -> bytes:
            session = lease.session
            wrapping, ckm, param = self._wrapping_key(session, wrapping_label, mechanism, unwrap=False)
            ctx.mechanism = ckm_name(ckm)
            target = self._key_object(session, target_label, public_only=False)
            attrs = target.get_attributes([Attribute.CLASS, Attribute.EXTRACTABLE])
            if not attrs.get(Attribute.EXTRACTABLE):
                raise OperationNotPermitted(f"key '{target_label}' is not extractable")
            if attrs[Attribute.CLASS] == ObjectClass.PRIVATE_KEY and mechanism.mode in _RSA_WRAPS:
                raise UnsupportedByBackend(f"{mechanism.mode} wraps secret keys only")
            try:
                return bytes(wrapping.wrap_key(target, mechanism=M(ckm), mechanism_param=param))
            except pkcs11.exceptions.KeySizeRange:
                raise InvalidInput(f"the token cannot wrap key '{target_label}' with {mechanism.mode}: its length "
                                   "does not fit (RFC 3394 needs a multiple of 8 bytes); use a _PAD wrap method") from None
        return self._call("wrapping", target_label, run)

    def unwrap(self, unwrapping_label: str, mechanism: WrapMechanism, wrapped: bytes, *, label: str,
               spec: KeySpec, attributes: KeyAttributes) -> KeyInfo:
        if not label:
            raise InvalidInput("a key label must not be empty")
        key_type = spec.key_type
        private = key_type in _PRIVATE_TYPES
        if not private and key_type not in _SECRETS:
            raise UnsupportedByBackend(f"{key_type} keys cannot be unwrapped on {self._where}")
        if private and mechanism.mode in _RSA_WRAPS:
            raise UnsupportedByBackend(f"{mechanism.mode} wraps secret keys only")
        template = self._new_key_template(key_type, attributes, label, private=private)

        def run(lease: Lease, ctx: CallContext) -> KeyInfo:
            session = lease.session
            self._refuse_taken(session, label)
            unwrapping, ckm, param = self._wrapping_key(session, unwrapping_label, mechanism, unwrap=True)
            ctx.mechanism = ckm_name(ckm)
            p11_class = ObjectClass.PRIVATE_KEY if private else ObjectClass.SECRET_KEY
            p11_type = _PRIVATE_TYPES[key_type] if private else _SECRETS[key_type][0]
            try:
                key = self._with_template(template, lambda t: self._integrity(
                    session, mechanism.mode, lambda: _Handle(unwrapping.unwrap_key(
                        p11_class, p11_type, wrapped, mechanism=M(ckm), mechanism_param=param, store=True,
                        capabilities=0, template=t))))
            except pkcs11.exceptions.FunctionFailed:
                raise UnsupportedByBackend(f"the token cannot unwrap {key_type} keys") from None
            obj = key.obj
            try:
                public = self._public_for_unwrapped(session, key_type, obj, attributes, label, template)
                info = self._describe(session, label, obj, public)
                if info.key_type is not key_type or (spec.size is not None and not private and info.size is not None
                                                     and info.size != spec.size):
                    raise DecryptFailed(f"the unwrapped key is not a {key_type} key of the requested size")
            except BaseException:
                self._destroy_quietly(obj)
                raise
            return info

        with self._generate_lock:
            return self._call("unwrapping", label, run)

    def _rsa_half(self, session: Any, key: Any, attrs: dict[Any, Any], label: str, *, private: bool) -> Any:
        """The RSA object an operation runs on: the private key (decrypt, unwrap) or the public key
        (encrypt, wrap), which a key pair found by its private half supplies through its CKA_ID."""
        is_private = attrs[Attribute.CLASS] == ObjectClass.PRIVATE_KEY
        if private and not is_private:
            raise OperationNotPermitted(f"key '{label}' is a public key without its private key")
        if private or not is_private:
            return key
        public = self._public_of(session, key, attrs)
        if public is None:
            raise UnsupportedByBackend(f"key '{label}' has no public key object on {self._where}")
        return public

    def _wrapping_key(self, session: Any, label: str, mechanism: WrapMechanism, *, unwrap: bool) -> tuple[Any, int, Any]:
        key = self._key_object(session, label)
        attrs = key.get_attributes([Attribute.CLASS, Attribute.KEY_TYPE, Attribute.ID])
        key_type = KEY_TYPES.get(attrs[Attribute.KEY_TYPE])
        if key_type is None or not self.capabilities().can_wrap(key_type, mechanism):
            raise UnsupportedByBackend(f"key '{label}' ({key_type or 'unknown type'}) cannot "
                                       f"{'unwrap' if unwrap else 'wrap'} with {mechanism.mode} on {self._where}")
        if key_type is KeyType.RSA:
            key = self._rsa_half(session, key, attrs, label, private=unwrap)
            ckm = _RSA_WRAPS[mechanism.mode]
            param = _oaep_param(mechanism.hash or HashAlg.SHA1) if mechanism.mode is WrapMode.RSA_OAEP else None
        else:
            ckm, param = _AES_WRAPS[mechanism.mode], None
        flag, name = (Attribute.UNWRAP, "unwrap") if unwrap else (Attribute.WRAP, "wrap")
        if not key.get_attributes([flag]).get(flag):
            raise OperationNotPermitted(f"key '{label}' may not {name} (CKA_{name.upper()} is false)")
        return key, ckm, param

    def _public_for_unwrapped(self, session: Any, key_type: KeyType, obj: Any, attributes: KeyAttributes,
                              label: str, template: dict[Any, Any]) -> Any | None:
        """An RSA private key made by C_UnwrapKey gets its public object (modulus and exponent are public
        attributes of the private key). Other types keep none: their public value is not an attribute."""
        if key_type is not KeyType.RSA:
            return None
        values = obj.get_attributes([Attribute.MODULUS, Attribute.PUBLIC_EXPONENT])
        public = {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: CKK.RSA, Attribute.TOKEN: True,
                  Attribute.PRIVATE: False, Attribute.LABEL: label, Attribute.ID: template[Attribute.ID],
                  Attribute.MODULUS: values[Attribute.MODULUS],
                  Attribute.PUBLIC_EXPONENT: values[Attribute.PUBLIC_EXPONENT],
                  Attribute.ENCRYPT: attributes.encrypt, Attribute.VERIFY: attributes.verify,
                  Attribute.WRAP: attributes.wrap, Attribute.MODIFIABLE: attributes.modifiable}
        return session.create_object(public)

    # ------------------------------------------------------------------------------------- import / export
    def import_key(self, label: str, *, key_type: KeyType, attributes: KeyAttributes,
                   private_key: bytes | None = None, public_key: bytes | None = None,
                   secret_key: bytes | None = None, curve_oid: str | None = None) -> KeyInfo:
        """PKCS#8 (RSA, EC, Ed, DSA) becomes a private and a public object, SPKI a public object alone (it
        replaces a public key alone of the same label), a raw secret a secret object; all with C_CreateObject."""
        if not label:
            raise InvalidInput("a key label must not be empty")
        if key_type not in self.capabilities().key_import:
            raise UnsupportedByBackend(f"{key_type} keys cannot be imported on {self._where}")
        if private_key:
            objects = self._private_templates(key_type, attributes, label, private_key)
            replace_public = False
        elif secret_key:
            objects = [self._secret_template(key_type, attributes, label, secret_key)]
            replace_public = False
        elif public_key:
            objects = [self._public_template(key_type, attributes, label, public_key, secrets.token_bytes(16))]
            replace_public = True
        else:
            raise InvalidInput("nothing to import: give a private, public or secret key")

        def run(lease: Lease, ctx: CallContext) -> KeyInfo:
            session = lease.session
            if self._keys_labelled(session, label):
                raise KeyExists(f"a key labelled '{label}' already exists on {self._where}")
            old = self._public_only(session, label)
            if old and not replace_public:
                raise KeyExists(f"a key labelled '{label}' already exists on {self._where}")
            created = []
            try:
                for template in objects:
                    created.append(self._with_template(template, lambda t: _Handle(session.create_object(t))).obj)
            except BaseException:
                for obj in created:
                    self._destroy_quietly(obj)
                raise
            for obj in old:  # the new public key replaces the old one
                self._destroy_quietly(obj)
            main = created[0]
            return self._describe(session, label, main, created[1] if len(created) > 1 else None)

        with self._generate_lock:
            return self._call("import", label, run)

    def export_key(self, label: str) -> ExportedKey:
        def run(lease: Lease, ctx: CallContext) -> ExportedKey:
            session = lease.session
            key = self._key_object(session, label)
            attrs = key.get_attributes([Attribute.CLASS, Attribute.KEY_TYPE, Attribute.EXTRACTABLE,
                                        Attribute.SENSITIVE])
            info = self._describe(session, label, key)
            if attrs[Attribute.CLASS] == ObjectClass.PUBLIC_KEY:
                return ExportedKey(public_key=info.public_key)  # a public key alone is public
            if not attrs.get(Attribute.EXTRACTABLE) or attrs.get(Attribute.SENSITIVE, True):
                raise OperationNotPermitted(f"key '{label}' can only be exported when it is extractable and not "
                                            "sensitive")
            if attrs[Attribute.CLASS] == ObjectClass.SECRET_KEY:
                return ExportedKey(secret_key=bytes(key[Attribute.VALUE]))
            private = _private_from_attributes(info.key_type, key)
            public_der = info.public_key or softcrypto.spki_der(private.public_key())
            return ExportedKey(private_key=_pkcs8(private), public_key=public_der)
        return self._call("export", label, run)

    def ecies_file_key(self, label: str, ephemeral_point: bytes, header: bytes) -> bytes:
        """CKM_ECDH1_DERIVE (CKD_NULL: what SoftHSM2 offers) into a sensitive, non-extractable session
        secret, then the X9.63 KDF on the token: C_DigestInit(CKM_SHA256), C_DigestKey(Z),
        C_DigestUpdate(00000001 ‖ header); Z is destroyed at once and never leaves the token."""
        if M.ECDH1_DERIVE not in self._mechanisms or M.SHA256 not in self._mechanisms:
            raise UnsupportedByBackend(f"{self._where} lacks CKM_ECDH1_DERIVE or CKM_SHA256 (file decryption)")

        def run(lease: Lease, ctx: CallContext) -> bytes:
            session = lease.session
            key = self._key_object(session, label, public_only=False)
            attrs = key.get_attributes([Attribute.CLASS, Attribute.KEY_TYPE, Attribute.DERIVE,
                                        Attribute.EC_PARAMS])
            if attrs[Attribute.CLASS] != ObjectClass.PRIVATE_KEY or attrs[Attribute.KEY_TYPE] != CKK.EC:
                raise UnsupportedByBackend(f"key '{label}' is not an EC private key on {self._where}")
            if not attrs.get(Attribute.DERIVE):
                raise OperationNotPermitted(f"key '{label}' may not derive (CKA_DERIVE is false)")
            ctx.mechanism = ckm_name(M.ECDH1_DERIVE)
            curve = softcrypto.EC_CURVES.get(curve_oid(attrs[Attribute.EC_PARAMS]) or "")
            if curve is None:
                raise UnsupportedByBackend(f"key '{label}' is on a curve hsmgate cannot use for ECDH")
            bits = 8 * -(-curve[1] // 8)  # Z: the x-coordinate, whole bytes
            shared = key.derive_key(CKK.GENERIC_SECRET, bits, store=False,
                                    mechanism_param=(pkcs11.KDF.NULL, None, ephemeral_point),
                                    template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
            try:
                ctx.mechanism = ckm_name(M.SHA256)
                return bytes(session.digest([shared, b"\x00\x00\x00\x01" + header], mechanism=M.SHA256))
            finally:
                shared.destroy()
        return self._call("ECDH", label, run)

    # --------------------------------------------------------------------------------------- templates
    def _new_key_template(self, key_type: KeyType, attributes: KeyAttributes, label: str, *,
                          private: bool) -> dict[Any, Any]:
        """Template of a private or secret key made by C_UnwrapKey or C_CreateObject: the requested attributes,
        a fresh CKA_ID; public-key rights (encrypt, verify, wrap) are left out of private keys (pitfall 5)."""
        template: dict[Any, Any] = {
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.LABEL: label,
            Attribute.ID: secrets.token_bytes(16),
            Attribute.SIGN: attributes.sign, Attribute.DECRYPT: attributes.decrypt,
            Attribute.UNWRAP: attributes.unwrap, Attribute.DERIVE: attributes.derive,
            Attribute.SENSITIVE: attributes.sensitive, Attribute.EXTRACTABLE: attributes.extractable,
            Attribute.MODIFIABLE: attributes.modifiable, Attribute.DESTROYABLE: attributes.destroyable,
            Attribute.COPYABLE: attributes.copyable,
        }
        if private:
            template |= {Attribute.ENCRYPT: pkcs11.DEFAULT, Attribute.VERIFY: pkcs11.DEFAULT,
                         Attribute.WRAP: pkcs11.DEFAULT}
        else:
            template |= {Attribute.ENCRYPT: attributes.encrypt, Attribute.VERIFY: attributes.verify,
                         Attribute.WRAP: attributes.wrap}
            if key_type in HMAC_KEYS:
                template[Attribute.ALLOWED_MECHANISMS] = [HMAC_KEYS[key_type].mechanism]
        return template

    def _secret_template(self, key_type: KeyType, attributes: KeyAttributes, label: str,
                         secret: bytes) -> dict[Any, Any]:
        ckk, lengths = _SECRETS[key_type]
        if lengths is not None and len(secret) not in lengths:
            raise InvalidInput(f"a {key_type} key must have {' or '.join(map(str, lengths))} bytes, not {len(secret)}")
        if lengths is None and not self._fits(HMAC_KEYS[key_type].mechanism, len(secret)):
            raise InvalidInput(f"the token takes no {key_type} key of {len(secret)} bytes")
        template = self._new_key_template(key_type, attributes, label, private=False)
        return template | {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: ckk, Attribute.VALUE: secret}

    def _private_templates(self, key_type: KeyType, attributes: KeyAttributes, label: str,
                           der: bytes) -> list[dict[Any, Any]]:
        try:
            private = serialization.load_der_private_key(der, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidInput(f"the imported key is not a PKCS#8 private key ({exc})") from None
        if softcrypto.key_type_of(private) is not key_type:  # type: ignore[arg-type]
            raise InvalidInput(f"the imported key is not a {key_type} key")
        template = self._new_key_template(key_type, attributes, label, private=True)
        template = {a: v for a, v in template.items() if v is not pkcs11.DEFAULT}
        template |= {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: _PRIVATE_TYPES[key_type]}
        if isinstance(private, rsa.RSAPrivateKey):
            n = private.private_numbers()
            template |= {Attribute.MODULUS: _int_bytes(n.public_numbers.n),
                         Attribute.PUBLIC_EXPONENT: _int_bytes(n.public_numbers.e),
                         Attribute.PRIVATE_EXPONENT: _int_bytes(n.d), Attribute.PRIME_1: _int_bytes(n.p),
                         Attribute.PRIME_2: _int_bytes(n.q), Attribute.EXPONENT_1: _int_bytes(n.dmp1),
                         Attribute.EXPONENT_2: _int_bytes(n.dmq1), Attribute.COEFFICIENT: _int_bytes(n.iqmp)}
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            oid = next((o for o, (c, _) in softcrypto.EC_CURVES.items() if c.name == private.curve.name), None)
            if oid is None:
                raise UnsupportedByBackend(f"curve {private.curve.name} is not supported on {self._where}")
            size = (private.curve.key_size + 7) // 8
            template |= {Attribute.EC_PARAMS: ObjectIdentifier(oid).dump(),
                         Attribute.VALUE: private.private_numbers().private_value.to_bytes(size, "big")}
        elif isinstance(private, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
            oid = softcrypto.ED25519_OID if isinstance(private, ed25519.Ed25519PrivateKey) else softcrypto.ED448_OID
            template |= {Attribute.EC_PARAMS: ObjectIdentifier(oid).dump(), Attribute.VALUE: private.private_bytes_raw()}
        elif isinstance(private, dsa.DSAPrivateKey):
            n = private.private_numbers()
            params = n.public_numbers.parameter_numbers
            template |= {Attribute.PRIME: _int_bytes(params.p), Attribute.SUBPRIME: _int_bytes(params.q),
                         Attribute.BASE: _int_bytes(params.g), Attribute.VALUE: _int_bytes(n.x)}
        else:
            raise UnsupportedByBackend(f"{key_type} keys cannot be imported on {self._where}")
        public_der = softcrypto.spki_der(private.public_key())  # type: ignore[arg-type]
        return [template, self._public_template(key_type, attributes, label, public_der, template[Attribute.ID])]

    def _public_template(self, key_type: KeyType, attributes: KeyAttributes, label: str, spki: bytes,
                         key_id: bytes) -> dict[Any, Any]:
        try:
            public = softcrypto.load_spki(spki)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"the public key is not a SubjectPublicKeyInfo ({exc})") from None
        if softcrypto.key_type_of(public) is not key_type:
            raise InvalidInput(f"the public key is not a {key_type} key")
        template: dict[Any, Any] = {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: _PRIVATE_TYPES[key_type],
            Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.LABEL: label, Attribute.ID: key_id,
            Attribute.ENCRYPT: attributes.encrypt, Attribute.VERIFY: attributes.verify,
            Attribute.WRAP: attributes.wrap, Attribute.MODIFIABLE: attributes.modifiable,
        }
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            template |= {Attribute.MODULUS: _int_bytes(numbers.n), Attribute.PUBLIC_EXPONENT: _int_bytes(numbers.e)}
        elif isinstance(public, ec.EllipticCurvePublicKey):
            oid = next((o for o, (c, _) in softcrypto.EC_CURVES.items() if c.name == public.curve.name), None)
            if oid is None:
                raise UnsupportedByBackend(f"curve {public.curve.name} is not supported on {self._where}")
            point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
            template |= {Attribute.EC_PARAMS: ObjectIdentifier(oid).dump(),
                         Attribute.EC_POINT: _octet_string(point)}
        elif isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            oid = softcrypto.ED25519_OID if isinstance(public, ed25519.Ed25519PublicKey) else softcrypto.ED448_OID
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            template |= {Attribute.EC_PARAMS: ObjectIdentifier(oid).dump(), Attribute.EC_POINT: _octet_string(raw)}
        elif isinstance(public, dsa.DSAPublicKey):
            numbers = public.public_numbers()
            params = numbers.parameter_numbers
            template |= {Attribute.PRIME: _int_bytes(params.p), Attribute.SUBPRIME: _int_bytes(params.q),
                         Attribute.BASE: _int_bytes(params.g), Attribute.VALUE: _int_bytes(numbers.y)}
        else:
            raise UnsupportedByBackend(f"{key_type} public keys cannot be imported on {self._where}")
        return template

    # ------------------------------------------------------------------------------------------ helpers
    def _refuse_taken(self, session: Any, label: str) -> None:
        if self._keys_labelled(session, label) or self._public_only(session, label):
            raise KeyExists(f"a key labelled '{label}' already exists on {self._where}")

    @staticmethod
    def _with_template(template: dict[Any, Any], make: Callable[[dict[Any, Any]], _Handle]) -> _Handle:
        """``make(template)``; once more without the attributes a PKCS#11 2.20 module may not know."""
        try:
            return make(template)
        except TEMPLATE_REFUSED:
            reduced = {a: v for a, v in template.items() if a not in OPTIONAL_ATTRIBUTES}
            if reduced == template:
                raise
            return make(reduced)

    @staticmethod
    def _destroy_quietly(obj: Any) -> None:
        try:
            obj.destroy()
        except PKCS11Error:
            pass

    def _measure_secret(self, session: Any, key: Any, attrs: dict[int, Any]) -> int | None:
        """Bits of a secret key whose CKA_VALUE_LEN the token left at 0 (SoftHSM2 does so for C_UnwrapKey), read
        from the length of an RFC 5649 wrap under a throwaway session key: the value never leaves the token.
        None when the key is not extractable or the token cannot do it."""
        if not attrs.get(Attribute.EXTRACTABLE) or M.AES_KEY_WRAP_PAD not in self._mechanisms:
            return None
        try:
            kek = session.generate_key(CKK.AES, 256, store=False, capabilities=0,
                                       template={Attribute.WRAP: True, Attribute.SENSITIVE: True,
                                                 Attribute.EXTRACTABLE: False})
        except PKCS11Error:
            return None
        try:
            blob = kek.wrap_key(key, mechanism=M.AES_KEY_WRAP_PAD)
        except PKCS11Error:
            return None
        finally:
            self._destroy_quietly(kek)
        return (len(blob) - 8) * 8  # a multiple of 64 bits: exact for AES, TDEA and SHA-2 HMAC keys

    # ------------------------------------------------------------------------------------------ probing
    def _probe_operations(self) -> Capabilities | None:
        """The capabilities with the optional operations the token really performs, found by a round trip of
        each candidate with throwaway session keys (an AES / DES3 / Camellia key, an RSA-1024 pair). A
        candidate whose key type cannot be generated is declared from the mechanism list alone."""
        mechs = self._mechanisms
        base = self._capabilities
        candidates = {(row.key_type, m) for mode, row in _SYMMETRIC.items() if row.ckm in mechs
                      for m in _modes(mode)}
        if M.RSA_PKCS_KEY_PAIR_GEN in mechs or M.RSA_PKCS in mechs:
            candidates |= {(KeyType.RSA, CipherMechanism(mode)) for mode in (CipherMode.RSA_PKCS1V15, CipherMode.RSA_RAW)
                           if _RSA_CIPHERS[mode] in mechs}
            if M.RSA_PKCS_OAEP in mechs:
                candidates |= {(KeyType.RSA, CipherMechanism(CipherMode.RSA_OAEP, hash=h)) for h in OAEP_HASHES}

        def run(lease: Lease, ctx: CallContext) -> frozenset[tuple[KeyType, CipherMechanism]]:
            keys = self._probe_keys(lease.session)
            try:
                return frozenset(c for c in candidates if c[0] not in keys or self._probe(keys[c[0]], c[1]))
            finally:
                for key in keys.values():
                    for obj in key if isinstance(key, tuple) else (key,):
                        self._destroy_quietly(obj)

        try:
            cipher = self._call("probing mechanisms", None, run)
        except HsmError:
            return None
        oaep = {m.hash for t, m in cipher if m.mode is CipherMode.RSA_OAEP}
        wrap = {(KeyType.AES, WrapMechanism(mode)) for mode, ckm in _AES_WRAPS.items() if ckm in mechs}
        if M.RSA_PKCS in mechs:
            wrap.add((KeyType.RSA, WrapMechanism(WrapMode.RSA_PKCS1V15)))
        wrap |= {(KeyType.RSA, WrapMechanism(WrapMode.RSA_OAEP, hash=h)) for h in oaep}
        hmac = frozenset(t for t, (_, ckm, _) in HMAC_KEYS.items() if ckm in mechs)
        importable = {t for t, (_, lengths) in _SECRETS.items()
                      if t in hmac or any(row.key_type is t and row.ckm in mechs for row in _SYMMETRIC.values())}
        importable |= {t for t in _PRIVATE_TYPES if t in base.key_specs}
        return replace(base, cipher=base.cipher | cipher, wrap=base.wrap | frozenset(wrap), hmac=base.hmac | hmac,
                       key_import=base.key_import | frozenset(importable))

    def _probe_keys(self, session: Any) -> dict[KeyType, Any]:
        keys: dict[KeyType, Any] = {}
        flags = {Attribute.ENCRYPT: True, Attribute.DECRYPT: True, Attribute.SENSITIVE: True,
                 Attribute.EXTRACTABLE: False}
        for key_type, ckk, ckm, size in ((KeyType.AES, CKK.AES, M.AES_KEY_GEN, 256),
                                         (KeyType.TDEA, CKK.DES3, M.DES3_KEY_GEN, 192),
                                         (KeyType.CAMELLIA, CKK.CAMELLIA, CKM_CAMELLIA_KEY_GEN, 256)):
            if ckm in self._mechanisms:
                try:
                    keys[key_type] = session.generate_key(ckk, size, store=False, capabilities=0, mechanism=M(ckm),
                                                          template=flags)
                except PKCS11Error:
                    pass
        if M.RSA_PKCS_KEY_PAIR_GEN in self._mechanisms:
            try:
                keys[KeyType.RSA] = session.generate_keypair(
                    CKK.RSA, 1024, store=False, capabilities=0, public_template={Attribute.ENCRYPT: True},
                    private_template={Attribute.DECRYPT: True, Attribute.SENSITIVE: True})
            except PKCS11Error:
                pass
        return keys

    @staticmethod
    def _probe(key: Any, mechanism: CipherMechanism) -> bool:
        """One encryption and decryption of 32 bytes (a 16-byte block for raw RSA); False on any refusal."""
        try:
            if isinstance(key, tuple):
                public, private = key
                ckm, param = Pkcs11Operations._rsa_cipher(mechanism)
                data = _PROBE_DATA[:16] if mechanism.mode is not CipherMode.RSA_RAW else _PROBE_DATA.rjust(128, b"\0")
                out = private.decrypt(public.encrypt(data, mechanism=M(ckm), mechanism_param=param),
                                      mechanism=M(ckm), mechanism_param=param)
                return bytes(out).endswith(data.lstrip(b"\0"))
            row = _SYMMETRIC[mechanism.mode]
            iv = secrets.token_bytes(row.iv_bytes) if row.iv_bytes else None
            param = Pkcs11Operations._symmetric_param(mechanism, row, iv, b"aad" if row.ckm == M.AES_GCM else None)
            out = key.decrypt(key.encrypt(_PROBE_DATA, mechanism=M(row.ckm), mechanism_param=param),
                              mechanism=M(row.ckm), mechanism_param=param)
            return bytes(out) == _PROBE_DATA
        except (PKCS11Error, HsmError, TypeError, ValueError):
            return False


class _Handle:
    """A created object, boxed so that :meth:`Pkcs11Operations._with_template` can retry its creation."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj


def _modes(mode: CipherMode) -> list[CipherMechanism]:
    if mode is CipherMode.AES_GCM:
        return [CipherMechanism(mode, tag_bits=bits) for bits in GCM_TAG_BITS]
    return [CipherMechanism(mode)]


def _octet_string(value: bytes) -> bytes:
    return OctetString(value).dump()  # type: ignore[no-any-return]


def _private_from_attributes(key_type: KeyType, key: Any) -> Any:
    """A ``cryptography`` private key rebuilt from the attributes of an extractable, non-sensitive key."""
    def integer(attr: Attribute) -> int:
        return int.from_bytes(key[attr], "big")

    if key_type is KeyType.RSA:
        n, e = integer(Attribute.MODULUS), integer(Attribute.PUBLIC_EXPONENT)
        numbers = rsa.RSAPrivateNumbers(integer(Attribute.PRIME_1), integer(Attribute.PRIME_2),
                                        integer(Attribute.PRIVATE_EXPONENT), integer(Attribute.EXPONENT_1),
                                        integer(Attribute.EXPONENT_2), integer(Attribute.COEFFICIENT),
                                        rsa.RSAPublicNumbers(e, n))
        return numbers.private_key()
    oid = curve_oid(key[Attribute.EC_PARAMS]) if key_type in (KeyType.EC, KeyType.ED) else None
    if key_type is KeyType.EC and oid in softcrypto.EC_CURVES:
        return ec.derive_private_key(integer(Attribute.VALUE), softcrypto.EC_CURVES[oid][0]())
    if key_type is KeyType.ED and oid in _ED_CURVES:
        return _ED_CURVES[oid].from_private_bytes(bytes(key[Attribute.VALUE]))
    if key_type is KeyType.DSA:
        p, q, g, x = (integer(a) for a in (Attribute.PRIME, Attribute.SUBPRIME, Attribute.BASE, Attribute.VALUE))
        params = dsa.DSAParameterNumbers(p, q, g)
        return dsa.DSAPrivateNumbers(x, dsa.DSAPublicNumbers(pow(g, x, p), params)).private_key()
    raise UnsupportedByBackend(f"{key_type} keys cannot be exported from this token")
