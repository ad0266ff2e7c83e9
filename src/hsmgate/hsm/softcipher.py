"""Software encryption, key wrapping and HMAC for the built-in token, on top of ``cryptography``.

Pure functions over key material; :mod:`hsmgate.hsm.soft` looks the material up, checks the key's
attributes and calls them. Choices the standards leave open, fixed here once:

* IVs are generated here from ``os.urandom``: 12 bytes for GCM, ChaCha20 and ChaCha20-Poly1305,
  one block for CBC and CTR (16 bytes; 8 for TDEA). ECB has no IV.
* ChaCha20 (RFC 8439 §2.4) uses a 12-byte nonce and starts at block counter 1, as Java's
  ``ChaCha20`` cipher does when it makes its own nonce.
* RSAES-OAEP uses MGF1 with the same hash as OAEP and an empty label.
* PKCS#1 v1.5 decryption uses implicit rejection (the countermeasure to Bleichenbacher/Marvin
  attacks): a tampered ciphertext decrypts to a pseudo-random message instead of failing. Use OAEP
  when tampering must be detected.
* Wrapped key blobs: a secret key is wrapped as its raw bytes; a private key as its PKCS#8
  ``PrivateKeyInfo`` DER. RFC 3394 (AES-KW) needs a multiple of 8 bytes, so a private key's DER is
  zero-padded to one; DER is self-delimiting, so unwrapping cuts the padding off again.
* A failed integrity check (GCM/Poly1305 tag, AES-KW IV, OAEP or PKCS#7 padding) raises
  :class:`DecryptFailed` and never returns partial output.
"""

from __future__ import annotations

import hmac as _hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import Camellia, TripleDES
from cryptography.hazmat.primitives import keywrap, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap

from hsmgate.hsm.base import (
    CipherMechanism,
    CipherMode,
    DecryptFailed,
    EncryptResult,
    HashAlg,
    InvalidInput,
    KeyType,
    UnsupportedByBackend,
    WrapMechanism,
    WrapMode,
)
from hsmgate.hsm.softcrypto import HASHES

#: GCM tag lengths in bits the TSB allows (``tagLength``; 0 on the wire means 128).
GCM_TAG_BITS = (64, 96, 104, 112, 120, 128)
#: Hashes usable with RSAES-OAEP.
OAEP_HASHES = (HashAlg.SHA1, HashAlg.SHA224, HashAlg.SHA256, HashAlg.SHA384, HashAlg.SHA512)
#: The hash of each HMAC key type.
HMAC_HASHES: dict[KeyType, HashAlg] = {
    KeyType.HMAC_SHA1: HashAlg.SHA1,
    KeyType.HMAC_SHA224: HashAlg.SHA224,
    KeyType.HMAC_SHA256: HashAlg.SHA256,
    KeyType.HMAC_SHA384: HashAlg.SHA384,
    KeyType.HMAC_SHA512: HashAlg.SHA512,
}

_BLOCK_CIPHERS = {KeyType.AES: algorithms.AES, KeyType.CAMELLIA: Camellia, KeyType.TDEA: TripleDES}
_MODES_BY_KEY_TYPE: dict[KeyType, tuple[CipherMode, ...]] = {
    KeyType.AES: (CipherMode.AES_GCM, CipherMode.AES_CBC, CipherMode.AES_CBC_PAD, CipherMode.AES_CTR,
                  CipherMode.AES_ECB, CipherMode.AES_ECB_PAD),
    KeyType.CAMELLIA: (CipherMode.CAMELLIA_CBC, CipherMode.CAMELLIA_CBC_PAD, CipherMode.CAMELLIA_ECB),
    KeyType.TDEA: (CipherMode.TDEA_CBC, CipherMode.TDEA_CBC_PAD, CipherMode.TDEA_ECB),
    KeyType.CHACHA20: (CipherMode.CHACHA20, CipherMode.CHACHA20_POLY1305),
}
#: mode → (chaining, padded); chaining is "cbc", "ecb" or "ctr".
_BLOCK_MODES: dict[CipherMode, tuple[str, bool]] = {
    CipherMode.AES_CBC: ("cbc", False), CipherMode.AES_CBC_PAD: ("cbc", True),
    CipherMode.AES_ECB: ("ecb", False), CipherMode.AES_ECB_PAD: ("ecb", True), CipherMode.AES_CTR: ("ctr", False),
    CipherMode.CAMELLIA_CBC: ("cbc", False), CipherMode.CAMELLIA_CBC_PAD: ("cbc", True),
    CipherMode.CAMELLIA_ECB: ("ecb", False),
    CipherMode.TDEA_CBC: ("cbc", False), CipherMode.TDEA_CBC_PAD: ("cbc", True), CipherMode.TDEA_ECB: ("ecb", False),
}
_NONCE_BYTES = 12
_CHACHA20_FIRST_BLOCK = 1


# -- what is implemented --------------------------------------------------------------------


def cipher_mechanisms(key_type: KeyType) -> frozenset[CipherMechanism]:
    """Every mechanism :func:`encrypt` / :func:`decrypt` implement for ``key_type``."""
    if key_type is KeyType.RSA:
        return frozenset({
            CipherMechanism(CipherMode.RSA_PKCS1V15), CipherMechanism(CipherMode.RSA_RAW),
            *(CipherMechanism(CipherMode.RSA_OAEP, hash=h) for h in OAEP_HASHES),
        })
    out: set[CipherMechanism] = set()
    for mode in _MODES_BY_KEY_TYPE.get(key_type, ()):
        if mode is CipherMode.AES_GCM:
            out.update(CipherMechanism(mode, tag_bits=bits) for bits in GCM_TAG_BITS)
        elif mode is CipherMode.CHACHA20_POLY1305:
            out.add(CipherMechanism(mode, tag_bits=128))
        else:
            out.add(CipherMechanism(mode))
    return frozenset(out)


def wrap_mechanisms(key_type: KeyType) -> frozenset[WrapMechanism]:
    """Mechanisms a key of ``key_type`` can wrap and unwrap with."""
    if key_type is KeyType.AES:
        return frozenset({WrapMechanism(WrapMode.AES_KW), WrapMechanism(WrapMode.AES_KWP)})
    if key_type is KeyType.RSA:
        return frozenset({WrapMechanism(WrapMode.RSA_PKCS1V15),
                          *(WrapMechanism(WrapMode.RSA_OAEP, hash=h) for h in OAEP_HASHES)})
    return frozenset()


# -- symmetric ------------------------------------------------------------------------------


def _block_cipher(key_type: KeyType, secret: bytes) -> algorithms.AES | Camellia | TripleDES:
    try:
        return _BLOCK_CIPHERS[key_type](secret)
    except KeyError:
        raise UnsupportedByBackend(f"{key_type} keys cannot be used as a block cipher") from None


def _iv_length(key_type: KeyType, mode: CipherMode) -> int | None:
    if mode in (CipherMode.AES_GCM, CipherMode.CHACHA20, CipherMode.CHACHA20_POLY1305):
        return _NONCE_BYTES
    chaining, _ = _BLOCK_MODES[mode]
    if chaining == "ecb":
        return None
    return 8 if key_type is KeyType.TDEA else 16


def _check_mode(key_type: KeyType, mechanism: CipherMechanism) -> None:
    if mechanism.mode not in _MODES_BY_KEY_TYPE.get(key_type, ()):
        raise UnsupportedByBackend(f"{mechanism.mode} cannot be used with a {key_type} key")


def _gcm_tag_bytes(mechanism: CipherMechanism) -> int:
    bits = mechanism.tag_bits or 128
    if bits not in GCM_TAG_BITS:
        raise InvalidInput(f"GCM tag length {bits} is not one of {', '.join(map(str, GCM_TAG_BITS))}")
    return bits // 8


def encrypt_symmetric(key_type: KeyType, secret: bytes, mechanism: CipherMechanism, data: bytes,
                      aad: bytes | None = None) -> EncryptResult:
    """Encrypt with a fresh IV. For AEAD modes the tag is returned apart from the ciphertext."""
    _check_mode(key_type, mechanism)
    mode = mechanism.mode
    if mode is CipherMode.AES_GCM:
        tag_bytes = _gcm_tag_bytes(mechanism)
        iv = os.urandom(_NONCE_BYTES)
        encryptor = Cipher(algorithms.AES(secret), modes.GCM(iv)).encryptor()
        if aad:
            encryptor.authenticate_additional_data(aad)
        ciphertext = encryptor.update(data) + encryptor.finalize()
        return EncryptResult(ciphertext, iv, encryptor.tag[:tag_bytes])
    if mode is CipherMode.CHACHA20_POLY1305:
        if mechanism.tag_bits not in (None, 128):
            raise InvalidInput("ChaCha20-Poly1305 has a 128-bit tag")
        iv = os.urandom(_NONCE_BYTES)
        sealed = ChaCha20Poly1305(secret).encrypt(iv, data, aad or None)
        return EncryptResult(sealed[:-16], iv, sealed[-16:])
    if mode is CipherMode.CHACHA20:
        iv = os.urandom(_NONCE_BYTES)
        return EncryptResult(_chacha20(secret, iv, data), iv)
    chaining, padded = _BLOCK_MODES[mode]
    algorithm = _block_cipher(key_type, secret)
    block = algorithm.block_size // 8
    if padded:
        padder = sym_padding.PKCS7(algorithm.block_size).padder()
        data = padder.update(data) + padder.finalize()
    elif chaining != "ctr" and len(data) % block:
        raise InvalidInput(f"{mode} needs a payload that is a multiple of {block} bytes, got {len(data)} bytes")
    iv_length = _iv_length(key_type, mode)
    iv = os.urandom(iv_length) if iv_length else None
    encryptor = Cipher(algorithm, _chaining_mode(chaining, iv)).encryptor()
    return EncryptResult(encryptor.update(data) + encryptor.finalize(), iv)


def decrypt_symmetric(key_type: KeyType, secret: bytes, mechanism: CipherMechanism, data: bytes, *,
                      iv: bytes | None, aad: bytes | None = None, tag: bytes | None = None) -> bytes:
    """Decrypt; any integrity, IV or padding failure is :class:`DecryptFailed`."""
    _check_mode(key_type, mechanism)
    mode = mechanism.mode
    iv_length = _iv_length(key_type, mode)
    if iv_length is not None and (iv is None or (len(iv) != iv_length and mode is not CipherMode.AES_GCM)):
        raise DecryptFailed(f"{mode} needs an initialization vector of {iv_length} bytes")
    if mode is CipherMode.AES_GCM:
        tag_bytes = _gcm_tag_bytes(mechanism)
        if tag is None or len(tag) != tag_bytes:
            raise DecryptFailed(f"the GCM tag must be {tag_bytes} bytes")
        if not 8 <= len(iv or b"") <= 128:
            raise DecryptFailed("the GCM initialization vector must be 8 to 128 bytes")
        try:
            decryptor = Cipher(algorithms.AES(secret), modes.GCM(iv, tag, min_tag_length=tag_bytes)).decryptor()
            if aad:
                decryptor.authenticate_additional_data(aad)
            plaintext = decryptor.update(data)
            plaintext += decryptor.finalize()
        except InvalidTag:
            raise DecryptFailed("decryption failed: the authentication tag does not match") from None
        return plaintext
    if mode is CipherMode.CHACHA20_POLY1305:
        if tag is None or len(tag) != 16:
            raise DecryptFailed("the ChaCha20-Poly1305 tag must be 16 bytes")
        try:
            return ChaCha20Poly1305(secret).decrypt(iv or b"", data + tag, aad or None)
        except InvalidTag:
            raise DecryptFailed("decryption failed: the authentication tag does not match") from None
    if mode is CipherMode.CHACHA20:
        return _chacha20(secret, iv or b"", data)
    chaining, padded = _BLOCK_MODES[mode]
    algorithm = _block_cipher(key_type, secret)
    block = algorithm.block_size // 8
    if chaining != "ctr" and len(data) % block:
        raise DecryptFailed(f"decryption failed: {mode} ciphertext must be a multiple of {block} bytes")
    decryptor = Cipher(algorithm, _chaining_mode(chaining, iv)).decryptor()
    plaintext = decryptor.update(data) + decryptor.finalize()
    if padded:
        try:
            unpadder = sym_padding.PKCS7(algorithm.block_size).unpadder()
            plaintext = unpadder.update(plaintext) + unpadder.finalize()
        except ValueError:
            raise DecryptFailed("decryption failed: bad padding (wrong key or IV, or a damaged ciphertext)") from None
    return plaintext


def _chaining_mode(chaining: str, iv: bytes | None) -> modes.Mode:
    if chaining == "cbc":
        return modes.CBC(iv or b"")
    if chaining == "ctr":
        return modes.CTR(iv or b"")
    return modes.ECB()


def _chacha20(secret: bytes, nonce: bytes, data: bytes) -> bytes:
    """ChaCha20 of RFC 8439 §2.4 (cryptography's 16-byte nonce is the counter ‖ the nonce)."""
    full_nonce = struct.pack("<I", _CHACHA20_FIRST_BLOCK) + nonce
    encryptor = Cipher(algorithms.ChaCha20(secret, full_nonce), mode=None).encryptor()
    return encryptor.update(data) + encryptor.finalize()


# -- RSA ------------------------------------------------------------------------------------


def _oaep(hash_alg: HashAlg | None) -> padding.OAEP:
    algorithm = HASHES[hash_alg or HashAlg.SHA1]()
    return padding.OAEP(mgf=padding.MGF1(algorithm), algorithm=algorithm, label=None)


def _rsa_capacity(public_key: rsa.RSAPublicKey, mode: CipherMode | WrapMode, hash_alg: HashAlg | None) -> int:
    size = (public_key.key_size + 7) // 8
    if mode in (CipherMode.RSA_OAEP, WrapMode.RSA_OAEP):
        return size - 2 * (hash_alg or HashAlg.SHA1).digest_size - 2
    if mode in (CipherMode.RSA_PKCS1V15, WrapMode.RSA_PKCS1V15):
        return size - 11
    return size


def encrypt_rsa(public_key: rsa.RSAPublicKey, mechanism: CipherMechanism, data: bytes) -> EncryptResult:
    """RSAES-PKCS1-v1_5, RSAES-OAEP or raw RSA (the payload as a big-endian integer below n)."""
    capacity = _rsa_capacity(public_key, mechanism.mode, mechanism.hash)
    if len(data) > capacity:
        raise InvalidInput(f"a payload of {len(data)} bytes is too long for {mechanism.mode} with a "
                           f"{public_key.key_size}-bit key (at most {max(capacity, 0)} bytes)")
    if mechanism.mode is CipherMode.RSA_PKCS1V15:
        return EncryptResult(public_key.encrypt(data, padding.PKCS1v15()))
    if mechanism.mode is CipherMode.RSA_OAEP:
        return EncryptResult(public_key.encrypt(data, _oaep(mechanism.hash)))
    if mechanism.mode is CipherMode.RSA_RAW:
        numbers = public_key.public_numbers()
        value = int.from_bytes(data, "big")
        if value >= numbers.n:
            raise InvalidInput("the payload, read as a big-endian number, must be smaller than the modulus")
        return EncryptResult(pow(value, numbers.e, numbers.n).to_bytes(capacity, "big"))
    raise UnsupportedByBackend(f"{mechanism.mode} cannot be used with an RSA key")


def decrypt_rsa(private_key: rsa.RSAPrivateKey, mechanism: CipherMechanism, data: bytes,
                raw_rsa: object | None = None) -> bytes:
    """Decrypt with the private key. Raw RSA returns the whole modulus-sized block; ``raw_rsa`` is
    the blinded pycryptodome key that performs it."""
    size = (private_key.key_size + 7) // 8
    if len(data) != size:
        raise DecryptFailed(f"decryption failed: the ciphertext must be {size} bytes for this key")
    try:
        if mechanism.mode is CipherMode.RSA_PKCS1V15:
            return private_key.decrypt(data, padding.PKCS1v15())
        if mechanism.mode is CipherMode.RSA_OAEP:
            return private_key.decrypt(data, _oaep(mechanism.hash))
        if mechanism.mode is CipherMode.RSA_RAW and raw_rsa is not None:
            block = raw_rsa._decrypt_to_bytes(int.from_bytes(data, "big"))  # type: ignore[attr-defined]
            return bytes(block).rjust(size, b"\x00")
    except ValueError:
        raise DecryptFailed(f"decryption failed: {mechanism.mode} padding check failed") from None
    raise UnsupportedByBackend(f"{mechanism.mode} cannot be used with an RSA key")


# -- key wrapping ---------------------------------------------------------------------------


def blob_of_private_key(private_key: object) -> bytes:
    """The PKCS#8 DER that travels inside a wrapped private key."""
    return private_key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def wrap_with_aes(secret: bytes, mechanism: WrapMechanism, material: bytes, *, private: bool) -> bytes:
    """RFC 3394 or RFC 5649 wrap of ``material`` (raw secret or PKCS#8 DER)."""
    if mechanism.mode is WrapMode.AES_KWP:
        return keywrap.aes_key_wrap_with_padding(secret, material)
    if mechanism.mode is WrapMode.AES_KW:
        if private and len(material) % 8:
            material += b"\x00" * (8 - len(material) % 8)  # DER is self-delimiting: cut off on unwrap
        if len(material) < 16 or len(material) % 8:
            raise InvalidInput(f"AES key wrap (RFC 3394) needs a key of a multiple of 8 bytes, at least 16; "
                               f"this one has {len(material)} bytes: use a _PAD wrap method")
        return keywrap.aes_key_wrap(secret, material)
    raise UnsupportedByBackend(f"{mechanism.mode} cannot be used with an AES key")


def unwrap_with_aes(secret: bytes, mechanism: WrapMechanism, wrapped: bytes) -> bytes:
    try:
        if mechanism.mode is WrapMode.AES_KWP:
            return keywrap.aes_key_unwrap_with_padding(secret, wrapped)
        if mechanism.mode is WrapMode.AES_KW:
            return keywrap.aes_key_unwrap(secret, wrapped)
    except (InvalidUnwrap, ValueError):
        raise DecryptFailed("unwrapping failed: wrong key, wrong wrap method or a damaged blob") from None
    raise UnsupportedByBackend(f"{mechanism.mode} cannot be used with an AES key")


def wrap_with_rsa(public_key: rsa.RSAPublicKey, mechanism: WrapMechanism, material: bytes) -> bytes:
    capacity = _rsa_capacity(public_key, mechanism.mode, mechanism.hash)
    if len(material) > capacity:
        raise InvalidInput(f"a key of {len(material)} bytes does not fit {mechanism.mode} with a "
                           f"{public_key.key_size}-bit RSA key")
    if mechanism.mode is WrapMode.RSA_OAEP:
        return public_key.encrypt(material, _oaep(mechanism.hash))
    if mechanism.mode is WrapMode.RSA_PKCS1V15:
        return public_key.encrypt(material, padding.PKCS1v15())
    raise UnsupportedByBackend(f"{mechanism.mode} cannot be used with an RSA key")


def unwrap_with_rsa(private_key: rsa.RSAPrivateKey, mechanism: WrapMechanism, wrapped: bytes) -> bytes:
    mode = CipherMode.RSA_OAEP if mechanism.mode is WrapMode.RSA_OAEP else CipherMode.RSA_PKCS1V15
    if mechanism.mode not in (WrapMode.RSA_OAEP, WrapMode.RSA_PKCS1V15):
        raise UnsupportedByBackend(f"{mechanism.mode} cannot be used with an RSA key")
    try:
        return decrypt_rsa(private_key, CipherMechanism(mode, hash=mechanism.hash), wrapped)
    except DecryptFailed:
        raise DecryptFailed("unwrapping failed: wrong key, wrong wrap method or a damaged blob") from None


def strip_der_padding(blob: bytes) -> bytes:
    """The PKCS#8 DER at the start of an unwrapped RFC 3394 blob, without the zero bytes that
    padded it to a multiple of 8; DecryptFailed when the blob is no DER SEQUENCE or the padding
    is not zeros."""
    length = _der_length(blob)
    if length is None or any(blob[length:]):
        raise DecryptFailed("the unwrapped data is not a PKCS#8 private key")
    return blob[:length]


def _der_length(blob: bytes) -> int | None:
    """Total length of the DER SEQUENCE at the start of ``blob``."""
    if len(blob) < 2 or blob[0] != 0x30:
        return None
    first = blob[1]
    if first < 0x80:
        total = 2 + first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or len(blob) < 2 + count:
            return None
        total = 2 + count + int.from_bytes(blob[2:2 + count], "big")
    return total if total <= len(blob) else None


# -- HMAC -----------------------------------------------------------------------------------


def hmac(key_type: KeyType, secret: bytes, data: bytes) -> bytes:
    try:
        hash_alg = HMAC_HASHES[key_type]
    except KeyError:
        raise UnsupportedByBackend(f"a {key_type} key is not an HMAC key") from None
    return _hmac.new(secret, data, str(hash_alg)).digest()


def hmac_verify(key_type: KeyType, secret: bytes, data: bytes, mac: bytes) -> bool:
    return _hmac.compare_digest(hmac(key_type, secret, data), mac)
