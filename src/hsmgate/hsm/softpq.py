"""Post-quantum keys of the software token: ML-DSA (FIPS 204), SLH-DSA (FIPS 205), ML-KEM (FIPS 203).

Which library does what:

* ``cryptography`` (OpenSSL 4) — ML-DSA-44/65/87 and ML-KEM-768/1024. It releases the GIL and is
  about ten times faster than ``pqcrypto`` at ML-DSA signing. It has no HashML-DSA, but it signs an
  external μ (``sign_mu``), so HashML-DSA is built here exactly as FIPS 204 Algorithm 4 defines it:
  ``μ = SHAKE256(SHAKE256(pk, 64) ‖ 1 ‖ |ctx| ‖ ctx ‖ OID(PH) ‖ PH(M), 64)``.
* ``pqcrypto`` (PQClean/RustCrypto) — all twelve SLH-DSA sets (pure and HashSLH-DSA) and
  ML-KEM-512. Its ``hash_algorithm`` (HashSLH-DSA) mode hashes the message itself, as FIPS 205
  Algorithm 23 does (its HashML-DSA mode, unused here, instead takes the digest PH(M) as the
  message); its ``encaps`` returns ``(ciphertext, shared_secret)``, the reverse of ``cryptography``.

Public keys are DER SubjectPublicKeyInfo with the NIST OID of the parameter set and no
parameters; ``subjectPublicKey`` holds the raw FIPS encoding of the key (the form ``cryptography``
produces for its own keys, built here for every set so both libraries' keys look the same).

Sealed private material (the plaintext the soft token seals) is self-describing::

    b"hsmgate-pq/1\\x00" ‖ format ‖ b"\\x00" ‖ key bytes

with ``format`` one of

* ``ml-dsa-seed``   the 32-byte FIPS 204 key-generation seed ξ (``MLDSA*PrivateKey.from_seed_bytes``);
* ``ml-kem-seed``   the 64-byte FIPS 203 seed d ‖ z (``MLKEM*PrivateKey.from_seed_bytes``);
* ``pqcrypto-sk``   ``pqcrypto``'s secret key: for SLH-DSA the FIPS 205 encoding
  SK.seed ‖ SK.prf ‖ PK.seed ‖ PK.root, for ML-KEM-512 the FIPS 203 decapsulation key (1632 bytes).

ML-KEM key wrapping (``WrapMode.ML_KEM_AES_KWP``): ``KEM ciphertext ‖ AES-KWP(K, key material)``
where K is the 32-byte ML-KEM shared secret used as an AES-256 key-encryption key (RFC 5649). The
ciphertext length is fixed per parameter set, so the blob splits without a length field.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from hsmgate.hsm.base import (
    DecryptFailed,
    InvalidInput,
    KeyType,
    PreHash,
    SignMechanism,
    SignScheme,
    UnsupportedByBackend,
)

MATERIAL_MAGIC = b"hsmgate-pq/1\x00"
FORMAT_ML_DSA_SEED = "ml-dsa-seed"
FORMAT_ML_KEM_SEED = "ml-kem-seed"
FORMAT_PQCRYPTO_SK = "pqcrypto-sk"

#: Longest FIPS 204 / 205 context string.
MAX_CONTEXT_LENGTH = 255
#: Length of the ML-DSA message representative μ.
MU_LENGTH = 64


@dataclass(frozen=True, slots=True)
class ParameterSet:
    """One FIPS 203/204/205 parameter set as the soft token implements it."""

    key_type: KeyType
    family: str  # "ML-DSA", "SLH-DSA" or "ML-KEM"
    oid: str
    library: str  # "cryptography" or "pqcrypto"
    module: str  # pqcrypto module name (also used for sizes)
    public_key_size: int
    signature_size: int | None = None
    ciphertext_size: int | None = None


def _slh(name: str, oid_arc: int, n: int, sig: int) -> ParameterSet:
    key_type = KeyType(f"SLH-DSA-{name}")
    module = "slh_dsa_" + name.lower().replace("-", "_")
    return ParameterSet(key_type, "SLH-DSA", f"2.16.840.1.101.3.4.3.{oid_arc}", "pqcrypto", module, 2 * n, sig)


#: Every post-quantum parameter set, in FIPS order. OIDs: NIST CSOR (sigAlgs 17–31, kems 1–3).
PARAMETER_SETS: dict[KeyType, ParameterSet] = {p.key_type: p for p in (
    ParameterSet(KeyType.ML_DSA_44, "ML-DSA", "2.16.840.1.101.3.4.3.17", "cryptography", "ml_dsa_44", 1312, 2420),
    ParameterSet(KeyType.ML_DSA_65, "ML-DSA", "2.16.840.1.101.3.4.3.18", "cryptography", "ml_dsa_65", 1952, 3309),
    ParameterSet(KeyType.ML_DSA_87, "ML-DSA", "2.16.840.1.101.3.4.3.19", "cryptography", "ml_dsa_87", 2592, 4627),
    _slh("SHA2-128s", 20, 16, 7856),
    _slh("SHA2-128f", 21, 16, 17088),
    _slh("SHA2-192s", 22, 24, 16224),
    _slh("SHA2-192f", 23, 24, 35664),
    _slh("SHA2-256s", 24, 32, 29792),
    _slh("SHA2-256f", 25, 32, 49856),
    _slh("SHAKE-128s", 26, 16, 7856),
    _slh("SHAKE-128f", 27, 16, 17088),
    _slh("SHAKE-192s", 28, 24, 16224),
    _slh("SHAKE-192f", 29, 24, 35664),
    _slh("SHAKE-256s", 30, 32, 29792),
    _slh("SHAKE-256f", 31, 32, 49856),
    ParameterSet(KeyType.ML_KEM_512, "ML-KEM", "2.16.840.1.101.3.4.4.1", "pqcrypto", "ml_kem_512", 800,
                 ciphertext_size=768),
    ParameterSet(KeyType.ML_KEM_768, "ML-KEM", "2.16.840.1.101.3.4.4.2", "cryptography", "ml_kem_768", 1184,
                 ciphertext_size=1088),
    ParameterSet(KeyType.ML_KEM_1024, "ML-KEM", "2.16.840.1.101.3.4.4.3", "cryptography", "ml_kem_1024", 1568,
                 ciphertext_size=1568),
)}

ML_DSA_TYPES = frozenset(k for k, p in PARAMETER_SETS.items() if p.family == "ML-DSA")
SLH_DSA_TYPES = frozenset(k for k, p in PARAMETER_SETS.items() if p.family == "SLH-DSA")
ML_KEM_TYPES = frozenset(k for k, p in PARAMETER_SETS.items() if p.family == "ML-KEM")

_MLDSA_PRIVATE: dict[KeyType, Any] = {
    KeyType.ML_DSA_44: mldsa.MLDSA44PrivateKey,
    KeyType.ML_DSA_65: mldsa.MLDSA65PrivateKey,
    KeyType.ML_DSA_87: mldsa.MLDSA87PrivateKey,
}
_MLDSA_PUBLIC: dict[KeyType, Any] = {
    KeyType.ML_DSA_44: mldsa.MLDSA44PublicKey,
    KeyType.ML_DSA_65: mldsa.MLDSA65PublicKey,
    KeyType.ML_DSA_87: mldsa.MLDSA87PublicKey,
}
_MLKEM_PRIVATE: dict[KeyType, Any] = {
    KeyType.ML_KEM_768: mlkem.MLKEM768PrivateKey,
    KeyType.ML_KEM_1024: mlkem.MLKEM1024PrivateKey,
}
_MLKEM_PUBLIC: dict[KeyType, Any] = {
    KeyType.ML_KEM_768: mlkem.MLKEM768PublicKey,
    KeyType.ML_KEM_1024: mlkem.MLKEM1024PublicKey,
}

#: DER of the pre-hash OIDs (FIPS 204 §5.4.1 / FIPS 205 §10.2.2: 2.16.840.1.101.3.4.2.x).
_PREHASH_OID_ARC: dict[PreHash, int] = {
    PreHash.SHA256: 1, PreHash.SHA384: 2, PreHash.SHA512: 3, PreHash.SHA224: 4,
    PreHash.SHA3_224: 7, PreHash.SHA3_256: 8, PreHash.SHA3_384: 9, PreHash.SHA3_512: 10,
    PreHash.SHAKE128: 11, PreHash.SHAKE256: 12,
}
_PQCRYPTO_HASH_NAMES: dict[PreHash, str] = {
    PreHash.SHA224: "Sha224", PreHash.SHA256: "Sha256", PreHash.SHA384: "Sha384", PreHash.SHA512: "Sha512",
    PreHash.SHA3_224: "Sha3_224", PreHash.SHA3_256: "Sha3_256", PreHash.SHA3_384: "Sha3_384",
    PreHash.SHA3_512: "Sha3_512", PreHash.SHAKE128: "Shake128", PreHash.SHAKE256: "Shake256",
}


def parameter_set(key_type: KeyType) -> ParameterSet:
    try:
        return PARAMETER_SETS[key_type]
    except KeyError:
        raise UnsupportedByBackend(f"{key_type} is not a post-quantum key type") from None


def _pqcrypto(key_type: KeyType) -> ModuleType:
    """The ``pqcrypto`` module of a parameter set (imported on first use)."""
    params = parameter_set(key_type)
    package = "pqcrypto.kem" if params.family == "ML-KEM" else "pqcrypto.sign"
    return importlib.import_module(f"{package}.{params.module}")


def _pqcrypto_hash(prehash: PreHash) -> Any:
    from pqcrypto import HashAlgorithm

    return getattr(HashAlgorithm, _PQCRYPTO_HASH_NAMES[prehash])


# -- DER -------------------------------------------------------------------------------------------


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def oid_der(dotted: str) -> bytes:
    """DER (tag, length, value) of an OBJECT IDENTIFIER."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def spki_der(key_type: KeyType, public_key: bytes) -> bytes:
    """SubjectPublicKeyInfo: AlgorithmIdentifier{OID, no parameters}, BIT STRING{raw public key}."""
    params = parameter_set(key_type)
    if len(public_key) != params.public_key_size:
        raise InvalidInput(f"a {key_type} public key has {params.public_key_size} bytes, not {len(public_key)}")
    return _tlv(0x30, _tlv(0x30, oid_der(params.oid)) + _tlv(0x03, b"\x00" + public_key))


def public_key_from_spki(key_type: KeyType, der: bytes) -> bytes:
    """The raw public key inside ``der``; InvalidInput unless it is exactly this type's SPKI."""
    params = parameter_set(key_type)
    template = spki_der(key_type, bytes(params.public_key_size))
    header = len(template) - params.public_key_size
    if len(der) != len(template) or der[:header] != template[:header]:
        raise InvalidInput(f"not a {key_type} SubjectPublicKeyInfo")
    return der[header:]


# -- keys ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PqPrivateKey:
    """A loaded post-quantum private key. ``handle`` is a ``cryptography`` private key object or
    ``pqcrypto``'s secret key bytes."""

    key_type: KeyType
    public_key: bytes  # raw FIPS encoding
    handle: Any

    @property
    def spki(self) -> bytes:
        return spki_der(self.key_type, self.public_key)


def _envelope(fmt: str, key: bytes) -> bytes:
    return MATERIAL_MAGIC + fmt.encode("ascii") + b"\x00" + key


def generate(key_type: KeyType) -> tuple[bytes, bytes]:
    """A new key pair: (material to seal, DER SubjectPublicKeyInfo)."""
    params = parameter_set(key_type)
    if key_type in _MLDSA_PRIVATE:
        private = _MLDSA_PRIVATE[key_type].generate()
        material = _envelope(FORMAT_ML_DSA_SEED, private.private_bytes_raw())
        public = private.public_key().public_bytes_raw()
    elif key_type in _MLKEM_PRIVATE:
        private = _MLKEM_PRIVATE[key_type].generate()
        material = _envelope(FORMAT_ML_KEM_SEED, private.private_bytes_raw())
        public = private.public_key().public_bytes_raw()
    else:
        public, secret = _pqcrypto(key_type).keygen()
        material = _envelope(FORMAT_PQCRYPTO_SK, secret)
    if len(public) != params.public_key_size:  # pragma: no cover - library contract
        raise UnsupportedByBackend(f"{params.library} returned a {len(public)}-byte {key_type} public key")
    return material, spki_der(key_type, public)


def is_pq_material(material: bytes) -> bool:
    return material.startswith(MATERIAL_MAGIC)


def material_format(material: bytes) -> str:
    """The format name recorded in sealed material (see the module docstring)."""
    if not is_pq_material(material):
        raise InvalidInput("not post-quantum key material")
    fmt, sep, _ = material[len(MATERIAL_MAGIC):].partition(b"\x00")
    if not sep:
        raise InvalidInput("truncated post-quantum key material")
    return fmt.decode("ascii", "replace")


def load(key_type: KeyType, material: bytes) -> PqPrivateKey:
    """Open sealed material (as :func:`generate` made it); InvalidInput when it does not fit."""
    params = parameter_set(key_type)
    fmt = material_format(material)
    key = material[len(MATERIAL_MAGIC) + len(fmt) + 1:]
    try:
        if fmt == FORMAT_ML_DSA_SEED and key_type in _MLDSA_PRIVATE:
            private = _MLDSA_PRIVATE[key_type].from_seed_bytes(key)
            return PqPrivateKey(key_type, private.public_key().public_bytes_raw(), private)
        if fmt == FORMAT_ML_KEM_SEED and key_type in _MLKEM_PRIVATE:
            private = _MLKEM_PRIVATE[key_type].from_seed_bytes(key)
            return PqPrivateKey(key_type, private.public_key().public_bytes_raw(), private)
    except ValueError as exc:
        raise InvalidInput(f"{key_type} seed: {exc}") from None
    if fmt == FORMAT_PQCRYPTO_SK and params.library == "pqcrypto":
        module = _pqcrypto(key_type)
        if len(key) != module.SECRET_KEY_SIZE:
            raise InvalidInput(f"a {key_type} secret key has {module.SECRET_KEY_SIZE} bytes, not {len(key)}")
        if params.family == "SLH-DSA":
            public = key[len(key) // 2:]  # SK.seed ‖ SK.prf ‖ PK.seed ‖ PK.root
        else:  # ML-KEM decapsulation key: dk_PKE (384·k) ‖ ek ‖ H(ek) ‖ z
            start = len(key) - 64 - params.public_key_size
            public = key[start:start + params.public_key_size]
            if hashlib.sha3_256(public).digest() != key[start + params.public_key_size:len(key) - 32]:
                raise InvalidInput(f"{key_type} decapsulation key fails its H(ek) check")
        return PqPrivateKey(key_type, public, bytes(key))
    raise InvalidInput(f"key material of format '{fmt}' cannot be a {key_type} key")


# -- signatures ------------------------------------------------------------------------------------


def sign_mechanisms(key_type: KeyType) -> frozenset[SignMechanism]:
    """Every mechanism :func:`sign` implements for ``key_type``."""
    if key_type in ML_DSA_TYPES:
        return frozenset({
            SignMechanism(SignScheme.ML_DSA),
            SignMechanism(SignScheme.ML_DSA, prehashed=True),  # external μ
            *(SignMechanism(SignScheme.HASH_ML_DSA, h) for h in PreHash),
        })
    if key_type in SLH_DSA_TYPES:
        return frozenset({
            SignMechanism(SignScheme.SLH_DSA),
            *(SignMechanism(SignScheme.HASH_SLH_DSA, h) for h in PreHash),
        })
    return frozenset()


def prehash(function: PreHash, data: bytes) -> bytes:
    """PH(M) of FIPS 204 §5.4 / FIPS 205 §10.2 (SHAKE128 → 32 bytes, SHAKE256 → 64 bytes)."""
    if function is PreHash.SHAKE128:
        return hashlib.shake_128(data).digest(32)
    if function is PreHash.SHAKE256:
        return hashlib.shake_256(data).digest(64)
    return hashlib.new(function.value, data).digest()


def _check_context(context: bytes | None) -> bytes:
    context = context or b""
    if len(context) > MAX_CONTEXT_LENGTH:
        raise InvalidInput(f"the context string has {len(context)} bytes; at most {MAX_CONTEXT_LENGTH} are allowed")
    return context


def _prehash_function(mechanism: SignMechanism) -> PreHash:
    try:
        return PreHash(mechanism.hash)  # HashAlg.SHA256 and PreHash.SHA256 are both "sha256"
    except ValueError:
        raise UnsupportedByBackend(f"{mechanism.scheme} needs a pre-hash function") from None


def hash_ml_dsa_mu(public_key: bytes, function: PreHash, data: bytes, context: bytes) -> bytes:
    """μ of HashML-DSA (FIPS 204 Algorithm 4 + Algorithm 7 line 6) for a raw public key."""
    m_prime = b"\x01" + bytes([len(context)]) + context + oid_der(
        f"2.16.840.1.101.3.4.2.{_PREHASH_OID_ARC[function]}") + prehash(function, data)
    tr = hashlib.shake_256(public_key).digest(64)
    return hashlib.shake_256(tr + m_prime).digest(MU_LENGTH)


def _check_mechanism(key_type: KeyType, mechanism: SignMechanism) -> None:
    if mechanism not in sign_mechanisms(key_type):
        raise UnsupportedByBackend(f"{mechanism.scheme} is not available for a {key_type} key")


def sign(key: PqPrivateKey, mechanism: SignMechanism, data: bytes, context: bytes | None = None) -> bytes:
    """Raw FIPS 204 / 205 signature of ``data`` (hedged / randomized signing)."""
    _check_mechanism(key.key_type, mechanism)
    context = _check_context(context)
    scheme = mechanism.scheme
    if scheme is SignScheme.ML_DSA and mechanism.prehashed:
        if context:
            raise InvalidInput("an external μ already binds the context; no context may be given with it")
        if len(data) != MU_LENGTH:
            raise InvalidInput(f"an external μ has {MU_LENGTH} bytes, not {len(data)}")
        return key.handle.sign_mu(data)
    if scheme is SignScheme.ML_DSA:
        return key.handle.sign(data, context or None)
    if scheme is SignScheme.HASH_ML_DSA:
        return key.handle.sign_mu(hash_ml_dsa_mu(key.public_key, _prehash_function(mechanism), data, context))
    module = _pqcrypto(key.key_type)
    if scheme is SignScheme.SLH_DSA:
        return module.sign(key.handle, data, context=context)
    function = _prehash_function(mechanism)  # HASH_SLH_DSA: pqcrypto computes PH(M) itself
    return module.sign(key.handle, data, context=context, hash_algorithm=_pqcrypto_hash(function))


def verify(key_type: KeyType, spki: bytes, mechanism: SignMechanism, data: bytes, signature: bytes,
           context: bytes | None = None) -> bool:
    """True when ``signature`` is valid; a malformed signature is simply invalid."""
    _check_mechanism(key_type, mechanism)
    context = _check_context(context)
    public = public_key_from_spki(key_type, spki)
    scheme = mechanism.scheme
    if key_type in ML_DSA_TYPES:
        key = _MLDSA_PUBLIC[key_type].from_public_bytes(public)
        try:
            if scheme is SignScheme.ML_DSA and mechanism.prehashed:
                if context:
                    raise InvalidInput("an external μ already binds the context; no context may be given with it")
                if len(data) != MU_LENGTH:
                    raise InvalidInput(f"an external μ has {MU_LENGTH} bytes, not {len(data)}")
                key.verify_mu(signature, data)
            elif scheme is SignScheme.ML_DSA:
                key.verify(signature, data, context or None)
            else:
                key.verify_mu(signature, hash_ml_dsa_mu(public, _prehash_function(mechanism), data, context))
        except (InvalidSignature, ValueError):
            return False
        return True
    from pqcrypto import InvalidSignatureError

    module = _pqcrypto(key_type)
    try:
        if scheme is SignScheme.SLH_DSA:
            module.verify(public, data, signature, context=context)
        else:
            function = _prehash_function(mechanism)
            module.verify(public, data, signature, context=context, hash_algorithm=_pqcrypto_hash(function))
    except (InvalidSignatureError, ValueError):
        return False
    return True


# -- key encapsulation -----------------------------------------------------------------------------


def encapsulate(key_type: KeyType, spki: bytes) -> tuple[bytes, bytes]:
    """ML-KEM.Encaps with a public key: (ciphertext, shared secret). Public material only."""
    if key_type not in ML_KEM_TYPES:
        raise UnsupportedByBackend(f"{key_type} is not an ML-KEM key")
    public = public_key_from_spki(key_type, spki)
    if key_type in _MLKEM_PUBLIC:
        try:
            shared, ciphertext = _MLKEM_PUBLIC[key_type].from_public_bytes(public).encapsulate()
        except ValueError as exc:  # FIPS 203 modulus check of the encapsulation key
            raise InvalidInput(f"invalid {key_type} public key: {exc}") from None
        return ciphertext, shared
    try:
        ciphertext, shared = _pqcrypto(key_type).encaps(public)
    except ValueError as exc:
        raise InvalidInput(f"invalid {key_type} public key: {exc}") from None
    return ciphertext, shared


def decapsulate(key: PqPrivateKey, ciphertext: bytes) -> bytes:
    """ML-KEM.Decaps: the 32-byte shared secret. A ciphertext of the right length never fails
    (implicit rejection yields an unrelated secret); a wrong length is InvalidInput."""
    params = parameter_set(key.key_type)
    if params.family != "ML-KEM":
        raise UnsupportedByBackend(f"{key.key_type} is not an ML-KEM key")
    if len(ciphertext) != params.ciphertext_size:
        raise InvalidInput(f"an {key.key_type} ciphertext has {params.ciphertext_size} bytes, not {len(ciphertext)}")
    if isinstance(key.handle, bytes):
        return _pqcrypto(key.key_type).decaps(key.handle, ciphertext)
    return key.handle.decapsulate(ciphertext)


def kem_wrap(key_type: KeyType, spki: bytes, material: bytes) -> bytes:
    """``ML_KEM_AES_KWP``: KEM ciphertext ‖ AES-KWP(shared secret, material)."""
    ciphertext, shared = encapsulate(key_type, spki)
    return ciphertext + aes_key_wrap_with_padding(shared, material)


def kem_unwrap(key: PqPrivateKey, wrapped: bytes) -> bytes:
    """Inverse of :func:`kem_wrap`; DecryptFailed when the blob was not made for this key."""
    size = parameter_set(key.key_type).ciphertext_size or 0
    if len(wrapped) < size + 16:
        raise InvalidInput(f"a key wrapped with {key.key_type} has at least {size + 16} bytes, not {len(wrapped)}")
    shared = decapsulate(key, wrapped[:size])
    try:
        return aes_key_unwrap_with_padding(shared, wrapped[size:])
    except InvalidUnwrap:
        raise DecryptFailed(f"the wrapped key does not open with {key.key_type} key material") from None
