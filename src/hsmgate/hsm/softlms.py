"""LMS / HSS hash-based signatures (RFC 8554, NIST SP 800-208) for the soft token, on pyhsslms.

Keys are HSS with one level (L = 1), as the TSB's example key: one LMS tree of height h with
LM-OTS ``LMOTS_SHA256_N32_W1``; h = 5 (``LMS_SHA256_M32_H5``, 32 signatures: the TSB's inferred
default) or h = 10 (``LMS_SHA256_M32_H10``, 1,024 signatures).

**State.** The one-time key index q is *not* in the sealed material: the store keeps the next index
in its own column and :class:`hsmgate.hsm.sealed_store.SealedKeyStore.reserve_index` advances it in
a committed transaction *before* the signature with that index is computed. A crash after the
reservation burns the index; nothing can make the store hand it out again. The material itself
(SEED, I, the type codes) never changes, so a copy of the database restored from a backup *would*
reuse indexes: the soft token cannot prevent that, an operator must (docs/post-quantum.md).

Encodings, as the reference decodes the TSB's example (wave 2 §6.2):

* sealed material: ``b"hsmgate-lms/v1\\x00" ‖ lms type ‖ lm-ots type ‖ SEED ‖ I``;
* public key: SubjectPublicKeyInfo, algorithm ``id-alg-hss-lms-hashsig`` (1.2.840.113549.1.9.16.3.17,
  RFC 8708) without parameters, the BIT STRING holding the HSS public key ``u32(L=1) ‖ LMS public key``;
* signature: the HSS signature ``u32(Nspk=0) ‖ LMS signature`` (8,688 bytes for H5/W1).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from asn1crypto import core
from pyhsslms import pyhsslms as _lms

from hsmgate.hsm.base import InvalidInput

HSS_LMS_OID = "1.2.840.113549.1.9.16.3.17"
#: Tree heights the soft token makes, with their RFC 8554 type codes (LM-OTS is always W1).
HEIGHTS: dict[int, bytes] = {5: _lms.lms_sha256_m32_h5, 10: _lms.lms_sha256_m32_h10}
DEFAULT_HEIGHT = 5
LMOTS_TYPE = _lms.lmots_sha256_n32_w1
_TAG = b"hsmgate-lms/v1\x00"
_N = 32
_I_LEN = 16


class _AlgorithmIdentifier(core.Sequence):
    _fields = [("algorithm", core.ObjectIdentifier)]  # noqa: RUF012 (asn1crypto declares fields so)


class _PublicKeyInfo(core.Sequence):
    _fields = [("algorithm", _AlgorithmIdentifier), ("public_key", core.OctetBitString)]  # noqa: RUF012 (asn1crypto declares fields so)


@dataclass
class LmsKey:
    """An unsealed LMS private key: its tree (computed once per process) and a lock, because
    pyhsslms signs through the object's own index."""

    tree: _lms.LmsPrivateKey
    height: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def capacity(self) -> int:
        return 1 << self.height


def is_lms_material(material: bytes) -> bool:
    return material.startswith(_TAG)


def generate(height: int = DEFAULT_HEIGHT) -> tuple[bytes, bytes, LmsKey]:
    """(sealed material, SPKI, the unsealed key) of a new key with a fresh SEED and I."""
    if height not in HEIGHTS:
        raise InvalidInput(f"LMS tree height {height} is not offered; heights: {', '.join(map(str, HEIGHTS))}")
    tree = _lms.LmsPrivateKey(lms_type=HEIGHTS[height], lmots_type=LMOTS_TYPE)
    material = _TAG + tree.lms_type + tree.lmots_type + tree.SEED + tree.I
    key = LmsKey(tree, height)
    return material, spki(key), key


def load(material: bytes) -> LmsKey:
    body = material[len(_TAG):]
    lms_type, lmots_type = body[0:4], body[4:8]
    seed, i = body[8:8 + _N], body[8 + _N:8 + _N + _I_LEN]
    height = next((h for h, code in HEIGHTS.items() if code == lms_type), None)
    if height is None or lmots_type != LMOTS_TYPE or len(seed) != _N or len(i) != _I_LEN:
        raise InvalidInput("not an LMS key of this token")
    return LmsKey(_lms.LmsPrivateKey(lms_type=lms_type, lmots_type=lmots_type, SEED=seed, I=i), height)


def hss_public_key(key: LmsKey) -> bytes:
    return b"\x00\x00\x00\x01" + key.tree.publicKey().serialize()


def spki(key: LmsKey) -> bytes:
    return spki_of(hss_public_key(key))


def spki_of(hss_public: bytes) -> bytes:
    """The SubjectPublicKeyInfo of an HSS public key (``u32(L) ‖ LMS public key``), as RFC 8708."""
    return _PublicKeyInfo({"algorithm": {"algorithm": HSS_LMS_OID}, "public_key": hss_public}).dump()


def sign(key: LmsKey, index: int, message: bytes) -> bytes:
    """The HSS signature of ``message`` with one-time key ``index`` — which the caller has
    reserved, durably, for this signature alone."""
    if not 0 <= index < key.capacity:
        raise InvalidInput(f"one-time key index {index} is outside 0..{key.capacity - 1}")
    with key.lock:
        key.tree.q = index
        return b"\x00\x00\x00\x00" + key.tree.sign(message)


def verify(spki_der: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8554 HSS verification under the key of ``spki_der``; malformed input is simply invalid."""
    try:
        info = _PublicKeyInfo.load(spki_der)
        if info["algorithm"]["algorithm"].dotted != HSS_LMS_OID:
            return False
        public = _lms.HssPublicKey.deserialize(info["public_key"].native)
        return bool(public.verify(message, signature))
    except (ValueError, TypeError, IndexError, KeyError):
        return False
