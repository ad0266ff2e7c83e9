"""The backend contract: what a key partition can do, in the vocabulary of the standards.

A *partition* is one key store: a PKCS#11 token (``pkcs11.py``) or the built-in software token
(``soft.py``). Everything above this package talks to a :class:`Partition` and never sees key
material; everything below it is the only code that does.

The vocabulary here is deliberately the standards' (PKCS#1, SEC 1, RFC 8032, PKCS#11), not the TSB
wire names: ``domain/algorithms.py`` maps TSB names onto these values, so a TSB rename never
reaches a backend.

Exceptions (all subclasses of :class:`HsmError`)::

    HsmError
     ├── KeyNotFound          no key with that label in this partition
     ├── KeyExists            a key with that label already exists
     ├── UnsupportedByBackend the backend cannot do this key type / mechanism (never a fallback)
     ├── OperationNotPermitted the key's attributes forbid the operation (e.g. sign=false)
     │    └── KeyExhausted    a stateful (LMS) key has no one-time key left
     ├── InvalidInput         the data cannot be used with this mechanism (wrong digest length …)
     ├── DecryptFailed        authentication tag / padding check failed (reserved for decrypt)
     └── BackendUnavailable   the token or module is gone; the caller may retry later
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from hsmgate.hsm.derivation import DerivationPath, DerivationScheme, NodeInfo


class HsmError(Exception):
    """Base of every error a backend raises; ``str(err)`` is safe to show to a caller."""


class KeyNotFound(HsmError):
    """No key with that label exists in the partition."""


class KeyExists(HsmError):
    """A key with that label already exists in the partition."""


class UnsupportedByBackend(HsmError):
    """The backend (or its token) does not offer this key type or mechanism."""


class OperationNotPermitted(HsmError):
    """The key's attributes forbid the operation (for example ``sign`` is false)."""


class KeyExhausted(OperationNotPermitted):
    """A stateful (hash-based) key has used every one-time key: it can never sign again."""


class InvalidInput(HsmError):
    """The input cannot be used with the mechanism (for example a digest of the wrong length)."""


class DecryptFailed(HsmError):
    """Decryption or unwrapping failed its integrity check; no partial output is returned."""


class BackendUnavailable(HsmError):
    """The module, token or session is not reachable right now."""


class ModuleUnusable(BackendUnavailable):
    """The PKCS#11 module file is missing or is not a PKCS#11 library."""


class TokenNotFound(BackendUnavailable):
    """No token (or more than one) matches the configured label or slot."""


class PinRefused(BackendUnavailable):
    """The token refused the user PIN (wrong, expired, locked or not initialised)."""


class KeyType(enum.StrEnum):
    """Key types a partition can hold. Values are the TSB's ``algorithm`` spelling."""

    RSA = "RSA"
    DSA = "DSA"
    EC = "EC"
    ED = "ED"  # Edwards curves: Ed25519 / Ed448, told apart by the curve OID
    AES = "AES"
    CHACHA20 = "ChaCha20"
    CAMELLIA = "Camellia"
    TDEA = "TDEA"
    HMAC_SHA1 = "HMACSHA1"
    HMAC_SHA224 = "HMACSHA224"
    HMAC_SHA256 = "HMACSHA256"
    HMAC_SHA384 = "HMACSHA384"
    HMAC_SHA512 = "HMACSHA512"
    # Post-quantum (FIPS 203 / 204 / 205); values are the TSB spelling
    ML_DSA_44 = "ML-DSA-44"
    ML_DSA_65 = "ML-DSA-65"
    ML_DSA_87 = "ML-DSA-87"
    SLH_DSA_SHA2_128S = "SLH-DSA-SHA2-128s"
    SLH_DSA_SHA2_128F = "SLH-DSA-SHA2-128f"
    SLH_DSA_SHA2_192S = "SLH-DSA-SHA2-192s"
    SLH_DSA_SHA2_192F = "SLH-DSA-SHA2-192f"
    SLH_DSA_SHA2_256S = "SLH-DSA-SHA2-256s"
    SLH_DSA_SHA2_256F = "SLH-DSA-SHA2-256f"
    SLH_DSA_SHAKE_128S = "SLH-DSA-SHAKE-128s"
    SLH_DSA_SHAKE_128F = "SLH-DSA-SHAKE-128f"
    SLH_DSA_SHAKE_192S = "SLH-DSA-SHAKE-192s"
    SLH_DSA_SHAKE_192F = "SLH-DSA-SHAKE-192f"
    SLH_DSA_SHAKE_256S = "SLH-DSA-SHAKE-256s"
    SLH_DSA_SHAKE_256F = "SLH-DSA-SHAKE-256f"
    ML_KEM_512 = "ML-KEM-512"
    ML_KEM_768 = "ML-KEM-768"
    ML_KEM_1024 = "ML-KEM-1024"
    BLS = "BLS"  # BLS12-381, the TSB's "BLS"
    LMS = "LMS"  # HSS/LMS (RFC 8554), stateful; the TSB reports it as "HSS-LMS"

    @property
    def is_asymmetric(self) -> bool:
        return self in (KeyType.RSA, KeyType.DSA, KeyType.EC, KeyType.ED, KeyType.BLS, KeyType.LMS) \
            or self.is_post_quantum

    @property
    def is_post_quantum(self) -> bool:
        return self.value.startswith(("ML-DSA-", "SLH-DSA-", "ML-KEM-"))

    @property
    def is_hmac(self) -> bool:
        return self.value.startswith("HMACSHA")


class HashAlg(enum.StrEnum):
    """Message digests a signing mechanism may apply. Values are the ``hashlib`` names."""

    SHA1 = "sha1"
    SHA224 = "sha224"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"
    SHA3_224 = "sha3_224"
    SHA3_256 = "sha3_256"
    SHA3_384 = "sha3_384"
    SHA3_512 = "sha3_512"

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self]

    @classmethod
    def for_digest_size(cls, size: int) -> HashAlg | None:
        """The SHA-2 (or SHA-1) hash whose output has ``size`` bytes, if any."""
        return {20: cls.SHA1, 28: cls.SHA224, 32: cls.SHA256, 48: cls.SHA384, 64: cls.SHA512}.get(size)


_DIGEST_SIZES = {
    HashAlg.SHA1: 20,
    HashAlg.SHA224: 28,
    HashAlg.SHA256: 32,
    HashAlg.SHA384: 48,
    HashAlg.SHA512: 64,
    HashAlg.SHA3_224: 28,
    HashAlg.SHA3_256: 32,
    HashAlg.SHA3_384: 48,
    HashAlg.SHA3_512: 64,
}


class PreHash(enum.StrEnum):
    """Pre-hash functions of HashML-DSA / HashSLH-DSA (FIPS 204 §5.4, FIPS 205 §10.2).

    Values are the ``hashlib`` names, so the SHA-2 / SHA-3 members compare (and hash) equal to the
    :class:`HashAlg` member of the same name. The SHAKE members are XOFs used with the output
    lengths FIPS 204 fixes: 256 bits for SHAKE128 and 512 bits for SHAKE256.
    """

    SHA224 = "sha224"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"
    SHA3_224 = "sha3_224"
    SHA3_256 = "sha3_256"
    SHA3_384 = "sha3_384"
    SHA3_512 = "sha3_512"
    SHAKE128 = "shake_128"
    SHAKE256 = "shake_256"


class SignScheme(enum.StrEnum):
    """Signature schemes by their standard names."""

    RSA_PKCS1V15 = "RSASSA-PKCS1-v1_5"  # EMSA-PKCS1-v1_5 with DigestInfo
    RSA_PKCS1V15_RAW = "RSASSA-PKCS1-v1_5-raw"  # type-1 padding over the data, no DigestInfo (NONEwithRSA)
    RSA_PSS = "RSASSA-PSS"  # MGF1 with the same hash, salt length = digest length
    DSA = "DSA"
    ECDSA = "ECDSA"
    EDDSA = "EdDSA"  # pure Ed25519 / Ed448; no hash
    ML_DSA = "ML-DSA"  # FIPS 204 pure ML-DSA; no hash
    HASH_ML_DSA = "HashML-DSA"  # FIPS 204 pre-hash variant; ``hash`` names the pre-hash
    SLH_DSA = "SLH-DSA"  # FIPS 205 pure SLH-DSA
    HASH_SLH_DSA = "HashSLH-DSA"  # FIPS 205 pre-hash variant
    BLS = "BLS-SIG-POP"  # BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_ (minimal-pubkey-size); the data is the message
    HSS_LMS = "HSS/LMS"  # RFC 8554 HSS signature of the message (stateful: one one-time key per signature)
    BIP340 = "BIP-340"  # Schnorr on secp256k1, x-only keys, 64-byte R.x‖s; the data is the 32-byte message


@dataclass(frozen=True, slots=True)
class SignMechanism:
    """How to turn data into a signature.

    ``hash`` is the digest of the scheme. With ``prehashed`` the data *is* that digest (the
    ``NONE…`` forms); otherwise the backend hashes the data itself. ``deterministic`` asks for
    RFC 6979 nonces (ECDSA / DSA only). For ``RSA_PKCS1V15_RAW`` and ``EDDSA`` ``hash`` is None.
    Post-quantum: ``ML_DSA`` / ``SLH_DSA`` have no hash (``ML_DSA`` with ``prehashed`` signs an
    external 64-byte μ, FIPS 204 Algorithm 7 line 6); ``HASH_ML_DSA`` / ``HASH_SLH_DSA`` carry
    their :class:`PreHash` in ``hash`` and the backend hashes the data.
    """

    scheme: SignScheme
    hash: HashAlg | PreHash | None = None
    prehashed: bool = False
    deterministic: bool = False


@dataclass(frozen=True, slots=True)
class SchnorrOptions:
    """Inputs of a BIP-340 signature beyond the message.

    ``aux_rand``: the 32 bytes of auxiliary randomness (None: the backend draws fresh random bytes).
    The key may be tweaked for a BIP-341 Taproot key-path spend — at most one of:

    * ``tweak``: the 32-byte scalar t itself: the signing key is d̃ + t, where d̃ is d or n − d so
      that d̃·G has an even y (BIP-341 ``taproot_tweak_seckey`` with t given);
    * ``merkle_root``: t = tagged_hash("TapTweak", x(P) ‖ merkle_root), with merkle_root empty
      (BIP-86: an output without scripts) or the 32-byte root of the script tree.

    The signature then verifies under the output key x(d̃·G + t·G).
    """

    aux_rand: bytes | None = None
    tweak: bytes | None = None
    merkle_root: bytes | None = None


class CipherMode(enum.StrEnum):
    """Encryption schemes by their standard names."""

    RSA_PKCS1V15 = "RSAES-PKCS1-v1_5"
    RSA_OAEP = "RSAES-OAEP"  # ``hash`` is the OAEP hash; MGF1 uses the same hash; empty label
    RSA_RAW = "RSA-raw"  # textbook RSA on a modulus-sized block (RSA_NO_PADDING)
    AES_GCM = "AES-GCM"
    AES_CBC = "AES-CBC"  # no padding: data must be block aligned
    AES_CBC_PAD = "AES-CBC-PAD"  # PKCS#7 padding
    AES_CTR = "AES-CTR"
    AES_ECB = "AES-ECB"  # no padding
    AES_ECB_PAD = "AES-ECB-PAD"  # PKCS#7 padding (Java's plain "AES")
    CHACHA20 = "ChaCha20"
    CHACHA20_POLY1305 = "ChaCha20-Poly1305"
    CAMELLIA_CBC = "Camellia-CBC"
    CAMELLIA_CBC_PAD = "Camellia-CBC-PAD"
    CAMELLIA_ECB = "Camellia-ECB"
    TDEA_CBC = "TDEA-CBC"
    TDEA_CBC_PAD = "TDEA-CBC-PAD"
    TDEA_ECB = "TDEA-ECB"


@dataclass(frozen=True, slots=True)
class CipherMechanism:
    """How to encrypt: the mode, plus the OAEP hash or the AEAD tag length in bits."""

    mode: CipherMode
    hash: HashAlg | None = None
    tag_bits: int | None = None


@dataclass(frozen=True, slots=True)
class EncryptResult:
    """Output of :meth:`Partition.encrypt`. ``ciphertext`` excludes the AEAD tag; ``iv`` is the
    IV/nonce the backend generated (None for modes without one)."""

    ciphertext: bytes
    iv: bytes | None = None
    tag: bytes | None = None


class WrapMode(enum.StrEnum):
    """Key-wrapping schemes by their standard names."""

    AES_KW = "AES-KW"  # RFC 3394
    AES_KWP = "AES-KWP"  # RFC 5649
    RSA_OAEP = "RSA-OAEP"  # ``hash`` names the OAEP hash (MGF1 with the same hash)
    RSA_PKCS1V15 = "RSA-PKCS1-v1_5"
    ML_KEM_AES_KWP = "ML-KEM+AES-KWP"  # KEM ciphertext ‖ AES-KWP under the shared secret


@dataclass(frozen=True, slots=True)
class WrapMechanism:
    mode: WrapMode
    hash: HashAlg | None = None


@dataclass(frozen=True, slots=True)
class ExportedKey:
    """Key material of an extractable, non-sensitive key: PKCS#8 DER, SPKI DER or raw secret."""

    private_key: bytes | None = None
    public_key: bytes | None = None
    secret_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What to generate: a key type plus its size in bits or its curve OID. ``derivation``: make a
    derivation master (EC / ED) of that scheme from a fresh random 256-bit seed."""

    key_type: KeyType
    size: int | None = None
    curve_oid: str | None = None
    derivation: DerivationScheme | None = None


@dataclass(frozen=True, slots=True)
class KeyAttributes:
    """PKCS#11-style key attributes. ``always_sensitive`` and ``never_extractable`` are read-only
    history bits maintained by the backend: they are ignored on generation."""

    decrypt: bool = False
    sign: bool = False
    unwrap: bool = False
    derive: bool = False
    encrypt: bool = False
    verify: bool = False
    wrap: bool = False
    sensitive: bool = True
    extractable: bool = False
    modifiable: bool = True
    destroyable: bool = False
    copyable: bool = False
    always_sensitive: bool = False
    never_extractable: bool = False

    def with_history(self, *, always_sensitive: bool, never_extractable: bool) -> KeyAttributes:
        return replace(self, always_sensitive=always_sensitive, never_extractable=never_extractable)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Public facts about one key. Never carries private or secret key material.

    ``public_key`` is DER SubjectPublicKeyInfo for asymmetric keys and None for secret keys.
    ``size`` is in bits (for EC/ED the field size of the curve). ``created_at`` is None when the
    backend cannot know it (a key made by another application on a PKCS#11 token).
    """

    label: str
    key_type: KeyType
    attributes: KeyAttributes
    size: int | None = None
    curve_oid: str | None = None
    key_id: bytes | None = None
    public_key: bytes | None = None
    created_at: datetime | None = None
    #: a derivation master or a derived child: its node's public facts (chain code, depth, …)
    derivation: NodeInfo | None = None
    #: a stateful key: (one-time keys used, one-time keys in all), read fresh by :meth:`Partition.get`
    one_time_keys: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a partition can do, as declared by its backend.

    ``key_specs`` maps each key type to the sizes (bits) or curve OIDs it can generate; an empty
    set means "no size parameter" (e.g. Ed25519 is listed by curve, ChaCha20 has one size).
    ``sign`` is the set of (key type, mechanism) pairs the backend can execute. ``derivation``:
    the (scheme, curve OID) pairs of the derivation masters it can hold; a partition that lists any
    accepts key names ``<master>/<path>`` wherever a label names a key to use (module text of
    ``derivation.py``).
    """

    backend: str
    key_specs: dict[KeyType, frozenset[int | str]] = field(default_factory=dict)
    sign: frozenset[tuple[KeyType, SignMechanism]] = frozenset()
    cipher: frozenset[tuple[KeyType, CipherMechanism]] = frozenset()
    wrap: frozenset[tuple[KeyType, WrapMechanism]] = frozenset()
    hmac: frozenset[KeyType] = frozenset()
    kem: frozenset[KeyType] = frozenset()
    key_import: frozenset[KeyType] = frozenset()
    derivation: frozenset[tuple[DerivationScheme, str]] = frozenset()

    def can_derive(self, scheme: DerivationScheme, curve_oid: str | None) -> bool:
        return (scheme, curve_oid or "") in self.derivation

    def can_generate(self, spec: KeySpec) -> bool:
        allowed = self.key_specs.get(spec.key_type)
        if allowed is None:
            return False
        wanted = spec.curve_oid if spec.key_type in (KeyType.EC, KeyType.ED) else spec.size
        if spec.derivation is not None and not self.can_derive(spec.derivation, spec.curve_oid):
            return False
        return not allowed or wanted in allowed

    def can_sign(self, key_type: KeyType, mechanism: SignMechanism) -> bool:
        return (key_type, mechanism) in self.sign

    def can_encrypt(self, key_type: KeyType, mechanism: CipherMechanism) -> bool:
        return (key_type, mechanism) in self.cipher

    def can_wrap(self, key_type: KeyType, mechanism: WrapMechanism) -> bool:
        return (key_type, mechanism) in self.wrap



def sign_each(items: Sequence[bytes], sign: Callable[[bytes], bytes]) -> list[bytes | HsmError]:
    """``sign`` applied to every item of a batch; an item that fails keeps its own :class:`HsmError`."""
    results: list[bytes | HsmError] = []
    for data in items:
        try:
            results.append(sign(data))
        except HsmError as exc:
            results.append(exc)
    return results

@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """What a partition's keys are kept in, to tell it from any other: the backend, and for a
    PKCS#11 token its label and serial number, for the soft token a fingerprint of its master key
    (an HMAC under the key, never the key itself)."""

    backend: str
    token_label: str | None = None
    token_serial: str | None = None
    key_fingerprint: str | None = None


class Partition(ABC):
    """One key store. Implementations must be safe to call from several threads at once.

    Where a method takes the label of a key to *use* (``get``, ``sign``, ``verify``, ``wrap``'s
    target, …), a partition whose capabilities list ``derivation`` also accepts ``<master>/<path>``:
    a persisted child of that name if one exists, else the child derived on the fly from the master
    (never stored). Labels of keys to create or delete are plain labels, except :meth:`derive_key`.
    """

    name: str

    @abstractmethod
    def identity(self) -> TokenIdentity:
        """The token this partition's keys live in (the state database is bound to it)."""

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """The key types and mechanisms this partition supports."""

    @abstractmethod
    def generate(self, label: str, spec: KeySpec, attributes: KeyAttributes,
                 key_id: bytes | None = None) -> KeyInfo:
        """Generate a key inside the partition.

        Raises KeyExists, UnsupportedByBackend. The returned attributes include the history bits.
        """

    @abstractmethod
    def list_labels(self) -> list[str]:
        """Labels of all keys in the partition (private and secret keys; public halves of a pair
        are not listed separately)."""

    @abstractmethod
    def get(self, label: str) -> KeyInfo:
        """Public facts about a key. Raises KeyNotFound."""

    @abstractmethod
    def delete(self, label: str) -> None:
        """Destroy a key (both halves of a pair). Raises KeyNotFound, OperationNotPermitted when
        the key is not destroyable."""

    @abstractmethod
    def sign(self, label: str, mechanism: SignMechanism, data: bytes, *, context: bytes | None = None) -> bytes:
        """Sign ``data`` with the private key.

        Returns the scheme's natural encoding: the RSA signature block; DER ``SEQUENCE{r, s}`` for
        DSA and ECDSA; the raw 64/114-byte EdDSA signature; the raw ML-DSA / SLH-DSA signature.
        ``context`` is the FIPS 204/205 context string (ML-DSA / SLH-DSA only). Raises KeyNotFound,
        OperationNotPermitted (no ``sign`` attribute), UnsupportedByBackend, InvalidInput.
        """

    def sign_many(self, label: str, mechanism: SignMechanism, items: Sequence[bytes], *,
                  context: bytes | None = None) -> list[bytes | HsmError]:
        """:meth:`sign` for each of ``items`` with one key and mechanism (a batch): one result
        per item, in order — the signature, or the :class:`HsmError` that item alone failed with.
        An error about the key itself (missing, no ``sign`` attribute) may instead be raised once.
        This default signs one by one; a backend that can look the key up once overrides it."""
        return sign_each(items, lambda data: self.sign(label, mechanism, data, context=context))

    def sign_bip340(self, label: str, messages: Sequence[bytes], options: SchnorrOptions) -> list[bytes | HsmError]:
        """BIP-340 Schnorr signatures (64 bytes each) of 32-byte ``messages`` with a secp256k1 key,
        one result per message as :meth:`sign_many`. Declared in capabilities as
        ``(KeyType.EC, SignMechanism(SignScheme.BIP340, None, True))``."""
        raise UnsupportedByBackend("BIP-340 Schnorr signatures are not supported by this backend")

    @abstractmethod
    def verify(self, label: str, mechanism: SignMechanism, data: bytes, signature: bytes,
               *, context: bytes | None = None) -> bool:
        """True when ``signature`` (encoded as :meth:`sign` returns it) is valid for ``data``."""

    # -- optional operations: a backend that lacks one declares it absent in capabilities() and
    # -- inherits these refusals; the API answers "not supported" before calling them.

    def encrypt(self, label: str, mechanism: CipherMechanism, data: bytes, *, iv: bytes | None = None,
                aad: bytes | None = None) -> EncryptResult:
        """Encrypt with a secret key or a public key. The backend generates IVs/nonces when
        ``iv`` is None. Raises OperationNotPermitted when the key may not encrypt."""
        raise UnsupportedByBackend(f"{mechanism.mode} encryption is not supported by this backend")

    def decrypt(self, label: str, mechanism: CipherMechanism, data: bytes, *, iv: bytes | None = None,
                aad: bytes | None = None, tag: bytes | None = None) -> bytes:
        """Decrypt; raises DecryptFailed (never partial plaintext) when integrity checks fail."""
        raise UnsupportedByBackend(f"{mechanism.mode} decryption is not supported by this backend")

    def wrap(self, wrapping_label: str, mechanism: WrapMechanism, target_label: str) -> bytes:
        """Wrap ``target_label`` under ``wrapping_label``. Never wraps a non-extractable key
        (OperationNotPermitted)."""
        raise UnsupportedByBackend(f"{mechanism.mode} wrapping is not supported by this backend")

    def unwrap(self, unwrapping_label: str, mechanism: WrapMechanism, wrapped: bytes, *, label: str,
               spec: KeySpec, attributes: KeyAttributes) -> KeyInfo:
        """Unwrap ``wrapped`` into a new key ``label`` of type ``spec``; raises DecryptFailed."""
        raise UnsupportedByBackend(f"{mechanism.mode} unwrapping is not supported by this backend")

    def hmac(self, label: str, data: bytes) -> bytes:
        """HMAC of ``data`` with an HMAC key (its hash is the key type's)."""
        raise UnsupportedByBackend("HMAC is not supported by this backend")

    def hmac_verify(self, label: str, data: bytes, mac: bytes) -> bool:
        """Constant-time check of an HMAC."""
        raise UnsupportedByBackend("HMAC is not supported by this backend")

    def decapsulate(self, label: str, ciphertext: bytes) -> bytes:
        """ML-KEM decapsulation with the private key; returns the shared secret. The key needs
        ``decrypt``, ``derive`` or ``unwrap`` (OperationNotPermitted otherwise)."""
        raise UnsupportedByBackend("key encapsulation is not supported by this backend")

    def ecies_file_key(self, label: str, ephemeral_point: bytes, header: bytes) -> bytes:
        """The 32-byte key of a file container (``hsm/file_container.py``): ECDH of the EC private
        key ``label`` with the sender's uncompressed ``ephemeral_point``, then the ANSI X9.63 KDF with
        SHA-256 and SharedInfo ``header``. The shared secret itself never leaves the backend (on a
        token: it is a sensitive session object, hashed with C_DigestKey). Raises KeyNotFound,
        OperationNotPermitted (no ``derive`` attribute), UnsupportedByBackend (not an EC key),
        InvalidInput (a point not on the key's curve)."""
        raise UnsupportedByBackend("ECDH (file decryption) is not supported by this backend")

    def import_key(self, label: str, *, key_type: KeyType, attributes: KeyAttributes,
                   private_key: bytes | None = None, public_key: bytes | None = None,
                   secret_key: bytes | None = None, curve_oid: str | None = None) -> KeyInfo:
        """Store key material made elsewhere (PKCS#8 DER, SPKI DER or raw secret). Imported keys
        are never ``always_sensitive`` / ``never_extractable``."""
        raise UnsupportedByBackend("key import is not supported by this backend")

    def export_key(self, label: str) -> ExportedKey:
        """Material of an extractable, non-sensitive key; OperationNotPermitted otherwise."""
        raise UnsupportedByBackend("key export is not supported by this backend")

    def import_seed(self, label: str, *, seed: bytes, curve_oid: str, scheme: DerivationScheme,
                    attributes: KeyAttributes) -> KeyInfo:
        """Make a derivation master from a BIP-32 seed (128–512 bits). Raises KeyExists,
        InvalidInput (seed length), UnsupportedByBackend."""
        raise UnsupportedByBackend("key derivation is not supported by this backend")

    def derive_key(self, master_label: str, path: DerivationPath, *, attributes: KeyAttributes) -> KeyInfo:
        """Persist the child of ``master_label`` at ``path`` as the key ``<master>/<path>``. Raises
        KeyNotFound, KeyExists, InvalidInput (a path the scheme cannot derive), UnsupportedByBackend."""
        raise UnsupportedByBackend("key derivation is not supported by this backend")

    @abstractmethod
    def generate_random(self, length: int) -> bytes:
        """``length`` bytes from the partition's random generator (C_GenerateRandom on a token)."""

    def close(self) -> None:
        """Release sessions, handles and caches. Idempotent."""
