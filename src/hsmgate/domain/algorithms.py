"""Registries of what the TSB names: key algorithms, curves and signature algorithms.

One row per wire name. Everything else — OIDs, sizes, the backend mechanism, how the payload is
prepared — is derived from the row, so adding a curve or a scheme is one line here plus its
backend support (declared by the backend's ``capabilities()``).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from Crypto.Hash import keccak

from hsmgate.hsm.base import (
    CipherMechanism,
    CipherMode,
    HashAlg,
    KeyType,
    PreHash,
    SignMechanism,
    SignScheme,
    WrapMechanism,
    WrapMode,
)


@dataclass(frozen=True, slots=True)
class KeyAlgorithm:
    """A creatable ``algorithm`` of ``POST /v1/key``."""

    wire_name: str
    key_type: KeyType
    oid: str
    sizes: frozenset[int] = frozenset()  # allowed keySize values; empty: keySize is not used
    default_size: int | None = None
    needs_curve: bool = False
    reported_name: str | None = None  # the ``algorithm`` key attributes report, when not ``wire_name``


def _row(name: str, key_type: KeyType, oid: str, sizes: tuple[int, ...] = (), default: int | None = None,
         curve: bool = False) -> KeyAlgorithm:
    return KeyAlgorithm(name, key_type, oid, frozenset(sizes), default, curve)


KEY_ALGORITHMS: dict[str, KeyAlgorithm] = {row.wire_name: row for row in (
    _row("RSA", KeyType.RSA, "1.2.840.113549.1.1.1", (1024, 2048, 3072, 4096, 8192), 2048),
    _row("DSA", KeyType.DSA, "1.2.840.10040.4.1", (1024, 2048, 3072, 4096), 2048),
    _row("EC", KeyType.EC, "1.2.840.10045.2.1", curve=True),
    _row("ED", KeyType.ED, "1.3.101.112", curve=True),
    _row("AES", KeyType.AES, "1.0.18033.3.2.1", (128, 192, 256), 256),
    _row("ChaCha20", KeyType.CHACHA20, "1.2.840.113549.1.9.16.3.18", (256,), 256),
    _row("Camellia", KeyType.CAMELLIA, "1.0.18033.3.2.2", (128, 192, 256), 256),
    _row("TDEA", KeyType.TDEA, "1.0.18033.3.1.1", (192,), 192),
    _row("HMACSHA1", KeyType.HMAC_SHA1, "1.2.840.113549.2.7", (160,), 160),
    _row("HMACSHA224", KeyType.HMAC_SHA224, "1.2.840.113549.2.8", (224,), 224),
    _row("HMACSHA256", KeyType.HMAC_SHA256, "1.2.840.113549.2.9", (256,), 256),
    _row("HMACSHA384", KeyType.HMAC_SHA384, "1.2.840.113549.2.10", (384,), 384),
    _row("HMACSHA512", KeyType.HMAC_SHA512, "1.2.840.113549.2.11", (512,), 512),
    # post-quantum: NIST OIDs (FIPS 204 sigAlgs 17–19, FIPS 205 sigAlgs 20–31 in FIPS order, FIPS 203
    # kems 1–3); the returned algorithm is the name itself; keySize is not used
    _row("ML-DSA-44", KeyType.ML_DSA_44, "2.16.840.1.101.3.4.3.17"),
    _row("ML-DSA-65", KeyType.ML_DSA_65, "2.16.840.1.101.3.4.3.18"),
    _row("ML-DSA-87", KeyType.ML_DSA_87, "2.16.840.1.101.3.4.3.19"),
    *(_row(f"SLH-DSA-{h}-{n}{v}", KeyType(f"SLH-DSA-{h}-{n}{v}"), f"2.16.840.1.101.3.4.3.{arc}")
      for arc, (h, n, v) in enumerate(((h, n, v) for h in ("SHA2", "SHAKE") for n in (128, 192, 256)
                                       for v in "sf"), start=20)),
    _row("ML-KEM-512", KeyType.ML_KEM_512, "2.16.840.1.101.3.4.4.1"),
    _row("ML-KEM-768", KeyType.ML_KEM_768, "2.16.840.1.101.3.4.4.2"),
    _row("ML-KEM-1024", KeyType.ML_KEM_1024, "2.16.840.1.101.3.4.4.3"),
    # BLS12-381, ciphersuite BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_; the TSB's default OID
    _row("BLS", KeyType.BLS, "1.3.6.1.4.1.44668.5.3.1.1"),
    # HSS/LMS (RFC 8554) with LM-OTS W1; keySize (hsmgate extension) is the tree height: 2^h signatures
    KeyAlgorithm("LMS", KeyType.LMS, "1.2.840.113549.1.9.16.3.17", frozenset({5, 10}), 5, reported_name="HSS-LMS"),
)}
KEY_ALGORITHM_BY_TYPE: dict[KeyType, KeyAlgorithm] = {row.key_type: row for row in KEY_ALGORITHMS.values()}
KEY_ALGORITHM_BY_OID: dict[str, KeyAlgorithm] = {row.oid: row for row in KEY_ALGORITHMS.values()}

#: Algorithms the TSB defines that hsmgate does not implement yet: refused with 613, never faked.
#: ISS, DH: not implemented; XMSS: no library that passes known-answer tests (see docs/post-quantum.md);
#: the draft round-3 names (Dilithium, SPHINCS+, Kyber) are not FIPS 203/204/205.
UNSUPPORTED_KEY_ALGORITHMS: frozenset[str] = frozenset({
    "ISS", "DH", "XMSS-SHA256_10_256", "XMSS-SHAKE256_10_256",
    "DILITHIUM_L2", "DILITHIUM_L3", "DILITHIUM_L5",
    "SPHINCS_PLUS_SHAKE_L1", "SPHINCS_PLUS_SHAKE_L3", "SPHINCS_PLUS_SHAKE_L5",
    *(f"KYBER{n}_WITH_{v}" for n in (512, 768, 1024) for v in ("SHAKE", "SHA2_AES")),
})


@dataclass(frozen=True, slots=True)
class Curve:
    """A named curve of the reference's curveOid list (§4.4)."""

    name: str
    oid: str
    key_type: KeyType
    field_bytes: int  # size of r and s in a raw signature


CURVES: dict[str, Curve] = {c.oid: c for c in (
    Curve("secp224k1", "1.3.132.0.32", KeyType.EC, 29),
    Curve("secp224r1", "1.3.132.0.33", KeyType.EC, 28),
    Curve("secp256k1", "1.3.132.0.10", KeyType.EC, 32),
    Curve("secp256r1", "1.2.840.10045.3.1.7", KeyType.EC, 32),
    Curve("secp384r1", "1.3.132.0.34", KeyType.EC, 48),
    Curve("secp521r1", "1.3.132.0.35", KeyType.EC, 66),
    Curve("x962p239v1", "1.2.840.10045.3.1.1", KeyType.EC, 30),
    Curve("x962p239v2", "1.2.840.10045.3.1.2", KeyType.EC, 30),
    Curve("x962p239v3", "1.2.840.10045.3.1.3", KeyType.EC, 30),
    Curve("brainpool224r1", "1.3.36.3.3.2.8.1.1.1", KeyType.EC, 28),
    Curve("brainpool256r1", "1.3.36.3.3.2.8.1.1.7", KeyType.EC, 32),
    Curve("brainpool320r1", "1.3.36.3.3.2.8.1.1.9", KeyType.EC, 40),
    Curve("brainpool384r1", "1.3.36.3.3.2.8.1.1.11", KeyType.EC, 48),
    Curve("brainpool512r1", "1.3.36.3.3.2.8.1.1.13", KeyType.EC, 64),
    Curve("frp256v1", "1.2.250.1.223.101.256.1", KeyType.EC, 32),
    Curve("Ed25519", "1.3.101.112", KeyType.ED, 32),
    Curve("Ed448", "1.3.101.113", KeyType.ED, 57),
)}
SECP256K1_OID = "1.3.132.0.10"


class PayloadForm(enum.Enum):
    """How the request payload becomes the backend's input."""

    MESSAGE = "message"  # the backend hashes it (or EdDSA signs it whole)
    DIGEST = "digest"  # the payload is already the digest of the row's hash
    DIGEST_ANY = "digest-any"  # the payload is a digest; its length picks the hash (NONE_WITH_*)
    KECCAK = "keccak"  # hsmgate applies Keccak (pre-standard SHA-3), the key signs the digest
    DOUBLE_SHA256 = "double-sha256"  # hsmgate applies SHA-256 once, the backend once more
    MU = "mu"  # the payload is the 64-byte ML-DSA message representative μ (external-μ ML-DSA)
    BIP340 = "bip340"  # the payload is the 32-byte BIP-340 message (a BIP-341 sighash), signed as is


@dataclass(frozen=True, slots=True)
class SignatureAlgorithm:
    """A ``signatureAlgorithm`` wire value and how to execute it."""

    wire_name: str
    key_type: KeyType
    scheme: SignScheme
    hash: HashAlg | None = None
    form: PayloadForm = PayloadForm.MESSAGE
    deterministic: bool = False
    keccak_bits: int | None = None
    key_types: frozenset[KeyType] = frozenset()  # when set: every key type the row accepts (PQC families)
    curves: frozenset[str] = frozenset()  # when set: the only curves (OIDs) the row accepts (BIP-340)

    def accepts(self, key_type: KeyType) -> bool:
        """True when a key of ``key_type`` may use this algorithm (else 607)."""
        return key_type in self.key_types if self.key_types else key_type is self.key_type

    @property
    def takes_context(self) -> bool:
        """True for the FIPS 204 / 205 schemes, whose ``context`` string the request may carry
        (external μ already binds its context)."""
        return self.scheme in _CONTEXT_SCHEMES and self.form is not PayloadForm.MU

    @property
    def passes_payload_through(self) -> bool:
        """True when :meth:`mechanism_for` hands the payload on unchanged and its mechanism (or
        refusal) depends on the payload's length alone: a batch works it out once per length."""
        return self.form not in (PayloadForm.KECCAK, PayloadForm.DOUBLE_SHA256)

    def mechanism_for(self, payload: bytes) -> tuple[SignMechanism, bytes] | None:
        """The backend mechanism and the data to hand it, or None when ``payload`` has a length no
        digest of this scheme can have."""
        form = self.form
        if form is PayloadForm.MESSAGE:
            return SignMechanism(self.scheme, self.hash, False, self.deterministic), payload
        if form is PayloadForm.DIGEST:
            if self.hash is None or len(payload) != self.hash.digest_size:
                return None
            return SignMechanism(self.scheme, self.hash, True, self.deterministic), payload
        if form is PayloadForm.DIGEST_ANY:
            if self.scheme is SignScheme.RSA_PKCS1V15_RAW:
                return SignMechanism(self.scheme), payload
            digest_hash = HashAlg.for_digest_size(len(payload))
            if digest_hash is None:
                return None
            return SignMechanism(self.scheme, digest_hash, True, self.deterministic), payload
        if form is PayloadForm.MU:
            if len(payload) != 64:
                return None
            return SignMechanism(self.scheme, None, True), payload
        if form is PayloadForm.BIP340:
            if len(payload) != 32:
                return None
            return SignMechanism(self.scheme, None, True), payload
        if form is PayloadForm.KECCAK:
            digest = keccak.new(digest_bits=self.keccak_bits or 256, data=payload).digest()
            digest_hash = HashAlg.for_digest_size(len(digest))
            return SignMechanism(self.scheme, digest_hash, True), digest
        # DOUBLE_SHA256
        return SignMechanism(self.scheme, HashAlg.SHA256, False), hashlib.sha256(payload).digest()


def _sig_rows() -> list[SignatureAlgorithm]:
    rows: list[SignatureAlgorithm] = []
    sha2 = {"SHA1": HashAlg.SHA1, "SHA224": HashAlg.SHA224, "SHA256": HashAlg.SHA256,
            "SHA384": HashAlg.SHA384, "SHA512": HashAlg.SHA512}
    sha3 = {"SHA3224": HashAlg.SHA3_224, "SHA3256": HashAlg.SHA3_256, "SHA3384": HashAlg.SHA3_384,
            "SHA3512": HashAlg.SHA3_512}
    rsa, pss, raw = SignScheme.RSA_PKCS1V15, SignScheme.RSA_PSS, SignScheme.RSA_PKCS1V15_RAW
    for name, h in sha2.items():
        rows.append(SignatureAlgorithm(f"{name}_WITH_RSA", KeyType.RSA, rsa, h))
        rows.append(SignatureAlgorithm(f"{name}_WITH_RSA_PSS", KeyType.RSA, pss, h))
        rows.append(SignatureAlgorithm(f"NONE{name}_WITH_RSA", KeyType.RSA, rsa, h, PayloadForm.DIGEST))
        if name != "SHA1":
            rows.append(SignatureAlgorithm(f"NONE{name}_WITH_RSA_PSS", KeyType.RSA, pss, h, PayloadForm.DIGEST))
        rows.append(SignatureAlgorithm(f"{name}_WITH_DSA", KeyType.DSA, SignScheme.DSA, h))
        rows.append(SignatureAlgorithm(f"{name}_WITH_ECDSA", KeyType.EC, SignScheme.ECDSA, h))
    for name, h in sha3.items():
        rows.append(SignatureAlgorithm(f"{name}_WITH_ECDSA", KeyType.EC, SignScheme.ECDSA, h))
    for bits in (224, 256, 384, 512):
        rows.append(SignatureAlgorithm(f"KECCAK{bits}_WITH_ECDSA", KeyType.EC, SignScheme.ECDSA,
                                       form=PayloadForm.KECCAK, keccak_bits=bits))
    rows += [
        SignatureAlgorithm("NONE_WITH_RSA", KeyType.RSA, raw, form=PayloadForm.DIGEST_ANY),
        SignatureAlgorithm("NONE_WITH_RSA_PSS", KeyType.RSA, pss, form=PayloadForm.DIGEST_ANY),
        SignatureAlgorithm("NONE_WITH_DSA", KeyType.DSA, SignScheme.DSA, form=PayloadForm.DIGEST_ANY),
        SignatureAlgorithm("NONE_WITH_ECDSA", KeyType.EC, SignScheme.ECDSA, form=PayloadForm.DIGEST_ANY),
        SignatureAlgorithm("DOUBLE_SHA256_WITH_ECDSA", KeyType.EC, SignScheme.ECDSA, HashAlg.SHA256,
                           PayloadForm.DOUBLE_SHA256),
        SignatureAlgorithm("SHA256_WITH_ECDSA_DETERMINISTIC", KeyType.EC, SignScheme.ECDSA, HashAlg.SHA256,
                           deterministic=True),
        SignatureAlgorithm("EDDSA", KeyType.ED, SignScheme.EDDSA),
        SignatureAlgorithm("BLS", KeyType.BLS, SignScheme.BLS),
        SignatureAlgorithm("LMS", KeyType.LMS, SignScheme.HSS_LMS),
        SignatureAlgorithm("NONE_WITH_EC_SCHNORR_BIP0340", KeyType.EC, SignScheme.BIP340, form=PayloadForm.BIP340,
                           curves=frozenset({SECP256K1_OID})),
    ]
    rows += _post_quantum_rows()
    return rows


ML_DSA_KEY_TYPES = frozenset({KeyType.ML_DSA_44, KeyType.ML_DSA_65, KeyType.ML_DSA_87})
SLH_DSA_KEY_TYPES = frozenset(t for t in KeyType if t.value.startswith("SLH-DSA-"))
ML_KEM_KEY_TYPES = frozenset({KeyType.ML_KEM_512, KeyType.ML_KEM_768, KeyType.ML_KEM_1024})
_CONTEXT_SCHEMES = frozenset({SignScheme.ML_DSA, SignScheme.HASH_ML_DSA, SignScheme.SLH_DSA,
                              SignScheme.HASH_SLH_DSA})
#: Pre-hash functions of the ``<PH>_WITH_ML_DSA`` / ``<PH>_WITH_SLH_DSA`` names (TSB 2026 / KC ``HsmUtil``).
PREHASH_WIRE_NAMES: dict[str, PreHash] = {
    "SHA2_224": PreHash.SHA224, "SHA2_256": PreHash.SHA256, "SHA2_384": PreHash.SHA384,
    "SHA2_512": PreHash.SHA512, "SHA3_224": PreHash.SHA3_224, "SHA3_256": PreHash.SHA3_256,
    "SHA3_384": PreHash.SHA3_384, "SHA3_512": PreHash.SHA3_512, "SHAKE_128": PreHash.SHAKE128,
    "SHAKE_256": PreHash.SHAKE256,
}


def _post_quantum_rows() -> list[SignatureAlgorithm]:
    """Both TSB generations: ``ML_DSA`` / ``SLH_DSA`` (+ pre-hash variants, ``ML_DSA_M`` = external μ)
    and the 2.1 names ``DILITHIUM`` (pure ML-DSA) and ``SPHINCS_PLUS`` (pure SLH-DSA). The payload is
    the message (hsmgate / the backend applies the pre-hash), except ``ML_DSA_M`` whose payload is μ."""
    mldsa, slhdsa = ML_DSA_KEY_TYPES, SLH_DSA_KEY_TYPES
    ml, slh = KeyType.ML_DSA_65, KeyType.SLH_DSA_SHA2_128F  # representative type; ``key_types`` decides
    rows = [
        SignatureAlgorithm("ML_DSA", ml, SignScheme.ML_DSA, key_types=mldsa),
        SignatureAlgorithm("ML_DSA_M", ml, SignScheme.ML_DSA, form=PayloadForm.MU, key_types=mldsa),
        SignatureAlgorithm("DILITHIUM", ml, SignScheme.ML_DSA, key_types=mldsa),
        SignatureAlgorithm("SLH_DSA", slh, SignScheme.SLH_DSA, key_types=slhdsa),
        SignatureAlgorithm("SPHINCS_PLUS", slh, SignScheme.SLH_DSA, key_types=slhdsa),
    ]
    for name, prehash in PREHASH_WIRE_NAMES.items():
        rows.append(SignatureAlgorithm(f"{name}_WITH_ML_DSA", ml, SignScheme.HASH_ML_DSA, prehash, key_types=mldsa))
        rows.append(SignatureAlgorithm(f"{name}_WITH_SLH_DSA", slh, SignScheme.HASH_SLH_DSA, prehash,
                                       key_types=slhdsa))
    return rows


SIGNATURE_ALGORITHMS: dict[str, SignatureAlgorithm] = {row.wire_name: row for row in _sig_rows()}

#: Signature algorithms the TSB defines that hsmgate does not implement yet (answered with 611).
#: ``KYBER`` (listed in the 2.1 signature enum) is a KEM; LMS / XMSS / BLS keys are not supported.
UNSUPPORTED_SIGNATURE_ALGORITHMS: tuple[str, ...] = (
    "ISS_KERL", "KYBER",
    "XMSS-SHA256_10_256", "XMSS-SHAKE256_10_256",
)

#: Every value the wire accepts for ``signatureAlgorithm``, in a stable order.
SIGNATURE_ALGORITHM_NAMES: tuple[str, ...] = (*SIGNATURE_ALGORITHMS, *UNSUPPORTED_SIGNATURE_ALGORITHMS)


class SignatureType(enum.StrEnum):
    """Encoding of a DSA/ECDSA signature on the wire."""

    DER = "DER"
    RAW = "RAW"  # r‖s, each as wide as the curve order
    ETH = "ETH"  # r‖s‖v with low s (EIP-2) and v = 27 + recovery id; secp256k1 only


# -- ciphers (reference §5.4) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CipherAlgorithm:
    """A ``cipherAlgorithm`` wire value and the backend mechanism it names.

    ``aead``: the tag is appended to ``encryptedPayload`` and also returned alone as
    ``messageAuthenticationCode``; ``tagLength`` applies. ``needs_iv``: decryption needs the
    ``initializationVector`` the encryption returned.
    """

    wire_name: str
    key_type: KeyType
    mode: CipherMode
    hash: HashAlg | None = None
    aead: bool = False
    needs_iv: bool = False

    def mechanism(self, tag_bits: int | None = None) -> CipherMechanism:
        """The backend mechanism; ``tag_bits`` only for AEAD modes (128 when not given)."""
        return CipherMechanism(self.mode, self.hash, (tag_bits or 128) if self.aead else None)


def _cipher_rows() -> list[CipherAlgorithm]:
    rsa, aes, cam, tdea, chacha = KeyType.RSA, KeyType.AES, KeyType.CAMELLIA, KeyType.TDEA, KeyType.CHACHA20
    oaep = CipherMode.RSA_OAEP
    return [
        CipherAlgorithm("RSA", rsa, CipherMode.RSA_PKCS1V15),
        CipherAlgorithm("RSA_PADDING_PKCS", rsa, CipherMode.RSA_PKCS1V15),
        CipherAlgorithm("RSA_PADDING_OAEP", rsa, oaep, HashAlg.SHA1),  # Java "OAEPPadding": SHA-1
        CipherAlgorithm("RSA_PADDING_OAEP_WITH_SHA1", rsa, oaep, HashAlg.SHA1),
        CipherAlgorithm("RSA_PADDING_OAEP_WITH_SHA224", rsa, oaep, HashAlg.SHA224),
        CipherAlgorithm("RSA_PADDING_OAEP_WITH_SHA256", rsa, oaep, HashAlg.SHA256),
        CipherAlgorithm("RSA_PADDING_OAEP_WITH_SHA384", rsa, oaep, HashAlg.SHA384),
        CipherAlgorithm("RSA_PADDING_OAEP_WITH_SHA512", rsa, oaep, HashAlg.SHA512),
        CipherAlgorithm("RSA_NO_PADDING", rsa, CipherMode.RSA_RAW),
        CipherAlgorithm("AES_GCM", aes, CipherMode.AES_GCM, aead=True, needs_iv=True),
        CipherAlgorithm("AES_CTR", aes, CipherMode.AES_CTR, needs_iv=True),
        CipherAlgorithm("AES_ECB", aes, CipherMode.AES_ECB),  # no padding: block-aligned payloads
        CipherAlgorithm("AES_CBC_NO_PADDING", aes, CipherMode.AES_CBC, needs_iv=True),
        CipherAlgorithm("AES", aes, CipherMode.AES_ECB_PAD),  # Java's default AES/ECB/PKCS5Padding
        CipherAlgorithm("CHACHA20", chacha, CipherMode.CHACHA20, needs_iv=True),
        CipherAlgorithm("CHACHA20_AEAD", chacha, CipherMode.CHACHA20_POLY1305, aead=True, needs_iv=True),
        CipherAlgorithm("CAMELLIA", cam, CipherMode.CAMELLIA_CBC_PAD, needs_iv=True),  # CBC + PKCS#7
        CipherAlgorithm("CAMELLIA_CBC_NO_PADDING", cam, CipherMode.CAMELLIA_CBC, needs_iv=True),
        CipherAlgorithm("CAMELLIA_ECB", cam, CipherMode.CAMELLIA_ECB),
        CipherAlgorithm("TDEA_CBC", tdea, CipherMode.TDEA_CBC_PAD, needs_iv=True),  # CBC + PKCS#7
        CipherAlgorithm("TDEA_ECB", tdea, CipherMode.TDEA_ECB),
        CipherAlgorithm("TDEA_CBC_NO_PADDING", tdea, CipherMode.TDEA_CBC, needs_iv=True),
    ]


CIPHER_ALGORITHMS: dict[str, CipherAlgorithm] = {row.wire_name: row for row in _cipher_rows()}
#: ``tagLength`` values the TSB accepts (0 means the default, 128).
TAG_LENGTHS: tuple[int, ...] = (0, 64, 96, 104, 112, 120, 128)


# -- key wrapping (reference §5.5) ------------------------------------------------------------

SECRET_KEY_TYPES: frozenset[KeyType] = frozenset(
    t for t in KeyType if not t.is_asymmetric
)


@dataclass(frozen=True, slots=True)
class WrapMethod:
    """A ``wrapMethod`` wire value: the wrapping key's types, the mechanism, and which key types
    may travel inside (the suffix ``_RSA``/``_EC``/``_ED``/``_DSA`` names a private key type)."""

    wire_name: str
    mode: WrapMode
    wrapping_key_types: frozenset[KeyType]
    wrapped_key_types: frozenset[KeyType]
    hash: HashAlg | None = None

    @property
    def mechanism(self) -> WrapMechanism:
        return WrapMechanism(self.mode, self.hash)


def _wrap_rows() -> list[WrapMethod]:
    aes, secret = frozenset({KeyType.AES}), SECRET_KEY_TYPES
    rows: list[WrapMethod] = []
    for prefix, mode in (("AES_WRAP", WrapMode.AES_KW), ("AES_WRAP_PAD", WrapMode.AES_KWP)):
        rows.append(WrapMethod(prefix, mode, aes, secret))
        for family in (KeyType.DSA, KeyType.EC, KeyType.ED, KeyType.RSA, KeyType.BLS):
            rows.append(WrapMethod(f"{prefix}_{family.value}", mode, aes, frozenset({family})))
    rows += [
        WrapMethod("RSA_WRAP_PAD", WrapMode.RSA_PKCS1V15, frozenset({KeyType.RSA}), secret),
        WrapMethod("RSA_WRAP_OAEP", WrapMode.RSA_OAEP, frozenset({KeyType.RSA}), secret, HashAlg.SHA1),
    ]
    for kem in (KeyType.ML_KEM_512, KeyType.ML_KEM_768, KeyType.ML_KEM_1024):  # KEM ciphertext ‖ AES-KWP
        rows.append(WrapMethod(kem.value, WrapMode.ML_KEM_AES_KWP, frozenset({kem}), frozenset(KeyType)))
    return rows


WRAP_METHODS: dict[str, WrapMethod] = {row.wire_name: row for row in _wrap_rows()}
#: Wrap methods the TSB defines for key types hsmgate does not have (answered with 611).
UNSUPPORTED_WRAP_METHODS: tuple[str, ...] = ()
#: Every value the wire accepts for ``wrapMethod``, in a stable order.
WRAP_METHOD_NAMES: tuple[str, ...] = (*WRAP_METHODS, *UNSUPPORTED_WRAP_METHODS)


# -- certificates (reference §5.2 "keytool" subset, §5.7) --------------------------------------

#: ``signatureAlgorithm`` values the certificate endpoints accept: the TSB's keytool subset plus
#: ``SHA224_WITH_ECDSA`` and ``EDDSA`` (hsmgate extensions, so EC P-224 and Ed25519/Ed448 keys can
#: carry certificates too).
CERTIFICATE_SIGNATURE_ALGORITHMS: tuple[str, ...] = (
    "SHA224_WITH_RSA", "SHA256_WITH_RSA", "SHA384_WITH_RSA", "SHA512_WITH_RSA",
    "SHA224_WITH_ECDSA", "SHA256_WITH_ECDSA", "SHA384_WITH_ECDSA", "SHA512_WITH_ECDSA", "EDDSA",
)


# -- key families (metrics labels) ------------------------------------------------------------

#: Label of a key family no algorithm name determines (an export, a timestamp key, …).
UNKNOWN_FAMILY = "unknown"


def _key_families() -> dict[str, str]:
    """The key family each signature algorithm, cipher and wrap method works with (the wrapping
    key's, for a wrap method): the key type's wire name, or ``ML-DSA`` / ``SLH-DSA`` for the
    post-quantum signature rows, which accept every parameter set."""
    families: dict[str, str] = {}
    for signature in SIGNATURE_ALGORITHMS.values():
        if signature.key_types:
            families[signature.wire_name] = "ML-DSA" if signature.key_types == ML_DSA_KEY_TYPES else "SLH-DSA"
        else:
            families[signature.wire_name] = signature.key_type.value
    for cipher in CIPHER_ALGORITHMS.values():
        families[cipher.wire_name] = cipher.key_type.value
    for wrap in WRAP_METHODS.values():
        families[wrap.wire_name] = "/".join(sorted(t.value for t in wrap.wrapping_key_types))
    return families


#: Algorithm wire name → key family, for the key-use gate's operation counts (domain/metrics.py).
KEY_FAMILIES: dict[str, str] = _key_families()
