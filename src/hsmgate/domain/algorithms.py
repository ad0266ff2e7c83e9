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

from hsmgate.hsm.base import HashAlg, KeyType, SignMechanism, SignScheme


@dataclass(frozen=True, slots=True)
class KeyAlgorithm:
    """A creatable ``algorithm`` of ``POST /v1/key``."""

    wire_name: str
    key_type: KeyType
    oid: str
    sizes: frozenset[int] = frozenset()  # allowed keySize values; empty: keySize is not used
    default_size: int | None = None
    needs_curve: bool = False


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
)}
KEY_ALGORITHM_BY_TYPE: dict[KeyType, KeyAlgorithm] = {row.key_type: row for row in KEY_ALGORITHMS.values()}
KEY_ALGORITHM_BY_OID: dict[str, KeyAlgorithm] = {row.oid: row for row in KEY_ALGORITHMS.values()}

#: Algorithms the TSB defines that hsmgate does not implement yet: refused with 613, never faked.
UNSUPPORTED_KEY_ALGORITHMS: frozenset[str] = frozenset({
    "ISS", "BLS", "DH", "LMS", "XMSS-SHA256_10_256", "XMSS-SHAKE256_10_256",
    "ML-DSA-44", "ML-DSA-65", "ML-DSA-87", "ML-KEM-512", "ML-KEM-768", "ML-KEM-1024",
    *(f"SLH-DSA-{h}-{n}{v}" for h in ("SHA2", "SHAKE") for n in (128, 192, 256) for v in "sf"),
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
    ]
    return rows


SIGNATURE_ALGORITHMS: dict[str, SignatureAlgorithm] = {row.wire_name: row for row in _sig_rows()}

#: Signature algorithms the TSB defines that hsmgate does not implement yet (answered with 611).
UNSUPPORTED_SIGNATURE_ALGORITHMS: tuple[str, ...] = (
    "NONE_WITH_EC_SCHNORR_BIP0340", "BLS", "ISS_KERL", "DILITHIUM", "SPHINCS_PLUS", "KYBER", "LMS",
    "ML_DSA", "ML_DSA_M", "SLH_DSA", "XMSS-SHA256_10_256", "XMSS-SHAKE256_10_256",
    *(f"{h}_WITH_{fam}" for fam in ("ML_DSA", "SLH_DSA")
      for h in ("SHA2_224", "SHA2_256", "SHA2_384", "SHA2_512", "SHA3_224", "SHA3_256", "SHA3_384",
                "SHA3_512", "SHAKE_128", "SHAKE_256")),
)

#: Every value the wire accepts for ``signatureAlgorithm``, in a stable order.
SIGNATURE_ALGORITHM_NAMES: tuple[str, ...] = (*SIGNATURE_ALGORITHMS, *UNSUPPORTED_SIGNATURE_ALGORITHMS)


class SignatureType(enum.StrEnum):
    """Encoding of a DSA/ECDSA signature on the wire."""

    DER = "DER"
    RAW = "RAW"  # r‖s, each as wide as the curve order
    ETH = "ETH"  # r‖s‖v with low s (EIP-2) and v = 27 + recovery id; secp256k1 only
