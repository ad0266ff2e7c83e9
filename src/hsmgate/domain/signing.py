"""Sign and verify: TSB signature algorithms executed by a partition, and signature encodings.

DSA and ECDSA signatures travel as DER ``SEQUENCE{r, s}`` by default, as raw ``r‖s`` with
``signatureType: RAW`` and as Ethereum ``r‖s‖v`` with ``ETH``. Verification accepts DER, raw and
ETH forms whatever type the request names, because TSB clients sign with RAW and verify without
saying so. BIP-340 Schnorr signatures are always the raw 64 bytes ``R.x‖s`` (``DER`` and ``RAW``
both name that; ``ETH`` is refused), verified against the key's x-only form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import cast

import coincurve
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from hsmgate.domain import errors
from hsmgate.domain.algorithms import (
    CURVES,
    SECP256K1_OID,
    SIGNATURE_ALGORITHMS,
    UNSUPPORTED_SIGNATURE_ALGORITHMS,
    SignatureAlgorithm,
    SignatureType,
)
from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.keys import key_info
from hsmgate.hsm.base import HsmError, KeyInfo, KeyType, Partition, SchnorrOptions, SignMechanism, SignScheme

#: Longest FIPS 204 / 205 context string.
MAX_CONTEXT_LENGTH = 255
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class SigningService:
    """Synchronous sign and verify on one partition."""

    def __init__(self, partition: Partition) -> None:
        self.partition = partition

    def sign(self, *, label: str, algorithm: str, payload: bytes,
             signature_type: SignatureType | None = None, context: bytes | None = None) -> bytes:
        """The signature of ``payload``, encoded as ``signature_type`` asks (DER by default).
        ``context`` is the FIPS 204 / 205 context string (ML-DSA / SLH-DSA only)."""
        row = signature_algorithm(algorithm)
        info, mechanism, data = self._prepare(label, row, payload, context)
        with translated():
            signature = self.partition.sign(label, mechanism, data, context=context or None)
        return _encoded(info, mechanism, data, signature, signature_type)

    def sign_many(self, *, label: str, algorithm: str, payloads: Sequence[bytes],
                  signature_type: SignatureType | None = None, context: bytes | None = None,
                  schnorr: SchnorrOptions | None = None) -> list[bytes | errors.TsbError]:
        """:meth:`sign` for many payloads with one key and algorithm (a batch): the key is looked
        up and checked once, the backend signs them together (``Partition.sign_many``). One result
        per payload, in order: its signature, or the TSB error of that payload alone. An error
        about the key or the algorithm (650, 701, 611, …) is raised once, for all."""
        row = signature_algorithm(algorithm)
        info = self._key_for(label, row, context)
        check_schnorr(row, schnorr, signature_type)
        results: list[bytes | errors.TsbError | None] = [None] * len(payloads)
        groups: dict[SignMechanism, list[tuple[int, bytes]]] = {}
        by_length: dict[int, SignMechanism | errors.TsbError] = {}  # (row.passes_payload_through)
        for index, payload in enumerate(payloads):
            known = by_length.get(len(payload)) if row.passes_payload_through else None
            if known is None:
                try:
                    known, data = self._mechanism(label, row, info, payload)
                except errors.TsbError as exc:
                    known = exc
                if row.passes_payload_through:
                    by_length[len(payload)] = known
            else:
                data = payload
            if isinstance(known, errors.TsbError):
                results[index] = known
                continue
            groups.setdefault(known, []).append((index, data))
        for mechanism, items in groups.items():
            with translated():
                if mechanism.scheme is SignScheme.BIP340:
                    signed = self.partition.sign_bip340(label, [data for _, data in items],
                                                        schnorr or SchnorrOptions())
                else:
                    signed = self.partition.sign_many(label, mechanism, [data for _, data in items],
                                                      context=context or None)
            for (index, data), signature in zip(items, signed, strict=True):
                try:
                    if isinstance(signature, HsmError):
                        with translated():
                            raise signature
                    results[index] = _encoded(info, mechanism, data, signature, signature_type)
                except errors.TsbError as exc:
                    results[index] = exc
        return cast("list[bytes | errors.TsbError]", results)  # every slot was set above

    def verify(self, *, label: str, algorithm: str, payload: bytes, signature: bytes,
               context: bytes | None = None) -> bool:
        """True when ``signature`` is valid; a malformed signature is simply not valid."""
        row = signature_algorithm(algorithm)
        info, mechanism, data = self._prepare(label, row, payload, context)
        if info.key_type in (KeyType.EC, KeyType.DSA) and mechanism.scheme is not SignScheme.BIP340:
            width = _scalar_width(info)
            der = _as_der(signature, width)
            if der is None:
                return False
            if der != signature and len(signature) == 2 * width + 1 and \
                    not _eth_recovery_id_matches(info, mechanism, data, signature):
                return False  # r‖s‖v is only the ETH form: secp256k1 with the right recovery id
            signature = der
        with translated():
            return self.partition.verify(label, mechanism, data, signature, context=context or None)

    def check(self, *, label: str, algorithm: str, payload: bytes, context: bytes | None = None) -> None:
        """Raise what :meth:`sign` would refuse before signing (unknown algorithm, 607 / 612 / 611):
        an SKA sign request is checked so before approvals are asked for it."""
        self._prepare(label, signature_algorithm(algorithm), payload, context)

    def _prepare(self, label: str, row: SignatureAlgorithm, payload: bytes,
                 context: bytes | None = None) -> tuple[KeyInfo, SignMechanism, bytes]:
        info = self._key_for(label, row, context)
        mechanism, data = self._mechanism(label, row, info, payload)
        return info, mechanism, data

    def _key_for(self, label: str, row: SignatureAlgorithm, context: bytes | None) -> KeyInfo:
        """The key, checked against the algorithm and the context string (payload aside)."""
        info = key_info(self.partition, label)  # 610 for a malformed name, 650 for a missing key
        if not row.accepts(info.key_type) or (row.curves and info.curve_oid not in row.curves):
            raise errors.AlgorithmNotSupportedByKey(
                f"signatureAlgorithm {row.wire_name} is not supported by key '{label}' ({info.key_type})"
            )
        if context and not row.takes_context:
            if info.key_type.is_post_quantum:  # ML_DSA_M: μ is computed with the context already
                raise errors.ValidationFailed(f"'context' must not be given with {row.wire_name}: "
                                              "the external μ already binds the context string")
            raise errors.ValidationFailed(
                f"'context' is only used by ML-DSA and SLH-DSA signature algorithms, not {row.wire_name}")
        if context and len(context) > MAX_CONTEXT_LENGTH:
            raise errors.ValidationFailed(
                f"'context' has {len(context)} bytes; FIPS 204 / 205 allow at most {MAX_CONTEXT_LENGTH}")
        return info

    def _mechanism(self, label: str, row: SignatureAlgorithm, info: KeyInfo,
                   payload: bytes) -> tuple[SignMechanism, bytes]:
        """The backend mechanism and the data it signs for ``payload`` with key ``info``."""
        prepared = row.mechanism_for(payload)
        if prepared is None:
            raise errors.InvalidPayload(
                f"'payload' of {len(payload)} bytes is not a digest that {row.wire_name} accepts"
            )
        mechanism, data = prepared
        if mechanism.scheme is SignScheme.RSA_PSS and mechanism.hash is not None and info.size:
            # EMSA-PSS needs emLen >= hLen + sLen + 2, and the salt is as long as the digest
            needed = 2 * mechanism.hash.digest_size + 2
            if (info.size + 6) // 8 < needed:
                raise errors.AlgorithmNotSupportedByKey(
                    f"signatureAlgorithm {row.wire_name} needs an RSA key of at least {8 * needed - 6} bits; "
                    f"key '{label}' has {info.size}"
                )
        if not self.partition.capabilities().can_sign(info.key_type, mechanism):
            raise errors.UnsupportedOperation(
                f"signatureAlgorithm {row.wire_name} is not supported by the "
                f"{self.partition.capabilities().backend} backend"
            )
        return mechanism, data


def _encoded(info: KeyInfo, mechanism: SignMechanism, data: bytes, signature: bytes,
             signature_type: SignatureType | None) -> bytes:
    """A backend signature in the encoding the caller asked for (DER by default; RAW r‖s or ETH
    r‖s‖v for ECDSA and DSA)."""
    if info.key_type not in (KeyType.EC, KeyType.DSA) or mechanism.scheme is SignScheme.BIP340:
        return signature
    kind = signature_type or SignatureType.DER
    if kind is SignatureType.DER:
        return signature
    width = _scalar_width(info)
    r, s = decode_dss_signature(signature)
    if kind is SignatureType.RAW:
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")
    return _ethereum(info, mechanism, data, r, s)


def schnorr_options(aux_rand: bytes | None, tweak: bytes | None, merkle_root: bytes | None) -> SchnorrOptions | None:
    """The BIP-340 fields of a sign request (None when none is given)."""
    if aux_rand is None and tweak is None and merkle_root is None:
        return None
    return SchnorrOptions(aux_rand, tweak, merkle_root)


def check_schnorr(row: SignatureAlgorithm, schnorr: SchnorrOptions | None,
                  signature_type: SignatureType | None) -> None:
    """600 for BIP-340 fields on another algorithm, a wrong length (aux and tweak: 32 bytes; merkle
    root: 0 or 32), a tweak together with a merkle root, or ``signatureType`` ETH with BIP-340."""
    if row.scheme is not SignScheme.BIP340:
        if schnorr is not None and (schnorr.aux_rand is not None or schnorr.tweak is not None
                                    or schnorr.merkle_root is not None):
            raise errors.ValidationFailed("'auxiliaryRandomData', 'taprootTweakData' and 'merkleRootData' are only "
                                          "used with NONE_WITH_EC_SCHNORR_BIP0340")
        return
    if signature_type is SignatureType.ETH:
        raise errors.ValidationFailed("'signatureType' ETH is an ECDSA encoding; BIP-340 signatures are 64 raw bytes")
    if schnorr is None:
        return
    if schnorr.aux_rand is not None and len(schnorr.aux_rand) != 32:
        raise errors.ValidationFailed(f"'auxiliaryRandomData' must be 32 bytes, not {len(schnorr.aux_rand)}")
    if schnorr.tweak is not None and schnorr.merkle_root is not None:
        raise errors.ValidationFailed("'taprootTweakData' and 'merkleRootData' are mutually exclusive")
    if schnorr.tweak is not None and len(schnorr.tweak) != 32:
        raise errors.ValidationFailed(f"'taprootTweakData' must be 32 bytes, not {len(schnorr.tweak)}")
    if schnorr.merkle_root is not None and len(schnorr.merkle_root) not in (0, 32):
        raise errors.ValidationFailed(
            f"'merkleRootData' must be empty (BIP-86 key path) or a 32-byte script tree root, not "
            f"{len(schnorr.merkle_root)} bytes")


def signature_algorithm(name: str) -> SignatureAlgorithm:
    """The registry row of a ``signatureAlgorithm`` wire name (611 when hsmgate does not
    implement it, 600 when it is no TSB name)."""
    row = SIGNATURE_ALGORITHMS.get(name)
    if row is not None:
        return row
    if name in UNSUPPORTED_SIGNATURE_ALGORITHMS:
        raise errors.UnsupportedOperation(f"signatureAlgorithm {name} is not supported by hsmgate")
    raise errors.ValidationFailed(f"Value '{name}' is not valid for field 'signatureAlgorithm'")


def _scalar_width(info: KeyInfo) -> int:
    """Bytes of r and s in a raw signature: the curve order's size, or DSA's q."""
    if info.key_type is KeyType.EC:
        return CURVES[info.curve_oid or ""].field_bytes
    public = serialization.load_der_public_key(info.public_key or b"")
    assert isinstance(public, dsa.DSAPublicKey)
    return (public.parameters().parameter_numbers().q.bit_length() + 7) // 8


def _as_der(signature: bytes, width: int) -> bytes | None:
    """DER form of a DER, raw r‖s or ETH r‖s‖v signature; None when it is none of these."""
    try:
        r, s = decode_dss_signature(signature)
        if encode_dss_signature(r, s) == signature:
            return signature
    except ValueError:
        pass
    if len(signature) in (2 * width, 2 * width + 1):
        r = int.from_bytes(signature[:width], "big")
        s = int.from_bytes(signature[width:2 * width], "big")
        if r and s:
            return encode_dss_signature(r, s)
    return None


def _ethereum(info: KeyInfo, mechanism: SignMechanism, data: bytes, r: int, s: int) -> bytes:
    """r‖s‖v with low s (EIP-2) and v = 27 + recovery id, found by recovering the public key."""
    if info.curve_oid != SECP256K1_OID:
        raise errors.ValidationFailed("'signatureType' ETH needs a secp256k1 key")
    if s > _SECP256K1_ORDER // 2:
        s = _SECP256K1_ORDER - s
    rs = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    for recovery_id in (0, 1):
        if _recovers_key(info, mechanism, data, rs, recovery_id):
            return rs + bytes([27 + recovery_id])
    raise errors.HsmFailure("could not derive the Ethereum recovery id of the signature")


def _recovers_key(info: KeyInfo, mechanism: SignMechanism, data: bytes, rs: bytes, recovery_id: int) -> bool:
    """True when secp256k1 public-key recovery from r‖s and ``recovery_id`` yields the key's point."""
    digest = data if mechanism.prehashed else hashlib.new(str(mechanism.hash), data).digest()
    # ECDSA on a 256-bit curve signs the leftmost 256 bits of the hash as an integer: shorter
    # digests (SHA-1, SHA-224, a 20-byte NONE_WITH_ECDSA payload) are left-padded to 32 bytes
    digest = digest[:32].rjust(32, b"\x00")
    public = serialization.load_der_public_key(info.public_key or b"")
    assert isinstance(public, ec.EllipticCurvePublicKey)
    point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    try:
        candidate = coincurve.PublicKey.from_signature_and_message(
            rs + bytes([recovery_id]), digest, hasher=None
        )
    except ValueError:
        return False
    return candidate.format(compressed=False) == point


def _eth_recovery_id_matches(info: KeyInfo, mechanism: SignMechanism, data: bytes, signature: bytes) -> bool:
    """An r‖s‖v signature is acceptable only on secp256k1, with v = 27/28 (or 0/1) naming the
    recovery id that really yields the key: any other trailing byte makes the encoding invalid."""
    if info.key_type is not KeyType.EC or info.curve_oid != SECP256K1_OID or mechanism.hash is None:
        return False
    v = signature[64]
    recovery_id = v - 27 if v in (27, 28) else v
    return recovery_id in (0, 1) and _recovers_key(info, mechanism, data, signature[:64], recovery_id)
