"""The Primus SKA token formats: one little-endian TLV codec and the typed tokens built on it.

Wire layout (reference §6.5/§6.6, all integers little-endian)::

    container = u32 length-of-rest ‖ TLV*
    TLV       = u16 tag ‖ u16 length ‖ value ‖ zero padding to a multiple of 4 bytes

The padding is *not* counted in a TLV's ``length`` but *is* counted in the enclosing container's
length (also after the last TLV). Containers nest: the value of an ``EKA_TIMESTAMP`` TLV and of every
binary-policy rule is itself a container with its own u32 header.

Typed structures:

* :class:`HsmTimestamp` — the HSM timestamp blob the timestamp key signs (level-4 ``timestamp``).
* :class:`ApprovalToBeSigned` — the challenge an approver signs (task ``approvalToBeSigned``), in its
  timed form (with HSM timestamp and its signature) and its time-less form (timelock = timeout = 0).
* :class:`SignedApproval` — a serialised ``PrimusAuthorizationToken`` (§6.8 ``signedApprovals``).

Every decoder is strict: truncation, wrong lengths, non-zero padding, trailing bytes, unknown or
out-of-order tags all raise :class:`TokenFormatError` (a ``ValueError``), never ``IndexError`` or
``struct.error``, because these bytes come from clients.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

from asn1crypto import core, x509

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
"""OID of SHA256withECDSA, the algorithm of the HSM timestamp signature (``SHA256_WITH_ECDSA``)."""

_OIDS_WITHOUT_PARAMETERS = frozenset({"1.3.101.112", "1.3.101.113"})  # Ed25519 / Ed448: RFC 8410 §3


class TokenFormatError(ValueError):
    """Bytes that should hold a TLV container, token, timestamp or DER element are malformed."""


class Tag(enum.IntEnum):
    """TLV tags. Names follow the JCE samples / DTO schema where known (reference §6.5, §6.6)."""

    EKA_OPERATION = 0x003B  # EkaOperation: u32, see Operation
    LABEL_UTF8_STRING = 0x1002  # LabelUtf8String: key label, timestamp-key name, token/group/approval name
    SECONDS_SINCE_EPOCH = 0x0107  # SecondsSinceEpoch: u64 Unix time
    EKA_TIMESTAMP = 0x1054  # EkaTimeStamp: an HsmTimestamp blob incl. its u32 header
    DER_SIGNATURE = 0x1056  # DerSignature: DER SEQUENCE{AlgorithmIdentifier, BIT STRING signature}
    EKA_SIGN_PAYLOAD = 0x1057  # EkaSignPayload / EkaUsagePayload: raw operation payload
    EKA_MODIFY_PAYLOAD = 0x1058  # EkaModifyPayload: binary policy (§6.6)
    # Binary policy (§6.6); names are ours, the reference has no JCE names for these.
    RULE_USE = 0x104E
    RULE_BLOCK = 0x104F
    RULE_UNBLOCK = 0x1050
    RULE_MODIFY = 0x1051
    TOKEN_COUNT = 0x0059  # u32 (GAP: read as number of tokens)
    MINUTES = 0x0055  # u32 timelock, then timeout, in minutes
    GROUP_COUNT = 0x005A  # u32 (GAP: read as number of groups)
    QUORUM = 0x005B  # u32 (GAP: read as the group quorum)
    APPROVAL_COUNT = 0x0003  # u32 (GAP: read as number of approvals in the group)
    APPROVER_PUBLIC_KEY = 0x1052  # DER SubjectPublicKeyInfo of one approver


PAYLOAD_TAGS = (Tag.EKA_SIGN_PAYLOAD, Tag.EKA_MODIFY_PAYLOAD)


class Operation(enum.IntEnum):
    """Value of the ``EKA_OPERATION`` TLV: which policy rule a token authorises.

    ``USE`` (1) covers sign, decrypt, unwrap and certificate operations and ``MODIFY`` (4) policy
    changes; both are observed. ``BLOCK`` (2) and ``UNBLOCK`` (3) are *inferred* from the gap in the
    numbering — no public sample shows them.
    """

    USE = 1
    BLOCK = 2  # inferred
    UNBLOCK = 3  # inferred
    MODIFY = 4

    @property
    def payload_tag(self) -> Tag:
        """The payload TLV of this operation: the binary policy for MODIFY, the raw payload else.

        For BLOCK/UNBLOCK this is a GAP decision (no sample); they carry ``EKA_SIGN_PAYLOAD``.
        """
        return Tag.EKA_MODIFY_PAYLOAD if self is Operation.MODIFY else Tag.EKA_SIGN_PAYLOAD


# --------------------------------------------------------------------------------------------------
# TLV and container codec
# --------------------------------------------------------------------------------------------------


class Tlv(NamedTuple):
    """One decoded TLV: the tag (kept as a plain int so unknown tags can be reported) and its value."""

    tag: int
    value: bytes


def _tag_name(tag: int) -> str:
    try:
        return f"{Tag(tag).name} (0x{tag:04X})"
    except ValueError:
        return f"0x{tag:04X}"


def _padding(length: int) -> int:
    """Zero bytes that follow a value of ``length`` bytes to reach a 4-byte boundary."""
    return -length % 4


def u32(value: int) -> bytes:
    """``value`` as 4 little-endian bytes; TokenFormatError if it does not fit."""
    if not 0 <= value <= U32_MAX:
        raise TokenFormatError(f"{value} does not fit an unsigned 32-bit field")
    return struct.pack("<I", value)


def u64(value: int) -> bytes:
    """``value`` as 8 little-endian bytes; TokenFormatError if it does not fit."""
    if not 0 <= value <= U64_MAX:
        raise TokenFormatError(f"{value} does not fit an unsigned 64-bit field")
    return struct.pack("<Q", value)


def encode_tlv(tag: int, value: bytes) -> bytes:
    """``u16 tag ‖ u16 len ‖ value ‖ zero padding`` (padding not counted in ``len``)."""
    if not 0 <= tag <= U16_MAX:
        raise TokenFormatError(f"tag {tag} does not fit 16 bits")
    if len(value) > U16_MAX:
        raise TokenFormatError(f"TLV {_tag_name(tag)}: value of {len(value)} bytes exceeds the 16-bit length")
    return struct.pack("<HH", tag, len(value)) + bytes(value) + bytes(_padding(len(value)))


def decode_tlvs(data: bytes, *, where: str = "container") -> list[Tlv]:
    """Split a concatenation of padded TLVs; the data must end exactly after the last padding."""
    data = bytes(data)
    items: list[Tlv] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise TokenFormatError(f"{where}: truncated TLV header at offset {pos}")
        tag, length = struct.unpack_from("<HH", data, pos)
        start = pos + 4
        end = start + length
        padded_end = end + _padding(length)
        if padded_end > len(data):
            raise TokenFormatError(
                f"{where}: TLV {_tag_name(tag)} at offset {pos} declares {length} bytes (+{_padding(length)} "
                f"padding) but only {len(data) - start} remain"
            )
        if any(data[end:padded_end]):
            raise TokenFormatError(f"{where}: TLV {_tag_name(tag)} at offset {pos} has non-zero padding")
        items.append(Tlv(tag, data[start:end]))
        pos = padded_end
    return items


def encode_container(tlvs: Iterable[tuple[int, bytes]]) -> bytes:
    """``u32 length-of-rest ‖ TLV*`` from ``(tag, value)`` pairs, in the order given."""
    body = b"".join(encode_tlv(tag, value) for tag, value in tlvs)
    return u32(len(body)) + body


def container_size(data: bytes, offset: int = 0, *, where: str = "container") -> int:
    """Total size (header included) of the container starting at ``offset``; checks it fits."""
    if len(data) - offset < 4:
        raise TokenFormatError(f"{where}: truncated length header ({len(data) - offset} bytes)")
    length = int(struct.unpack_from("<I", data, offset)[0])
    if length > len(data) - offset - 4:
        raise TokenFormatError(
            f"{where}: length header says {length} bytes but only {len(data) - offset - 4} follow"
        )
    return 4 + length


def decode_container(data: bytes, *, where: str = "container") -> list[Tlv]:
    """Parse ``u32 length-of-rest ‖ TLV*``; the length must match the data exactly (no trailing bytes)."""
    data = bytes(data)
    size = container_size(data, where=where)
    if size != len(data):
        raise TokenFormatError(f"{where}: {len(data) - size} trailing bytes after the declared length")
    return decode_tlvs(data[4:], where=where)


class TlvReader:
    """Consumes decoded TLVs in a fixed order; anything missing, unexpected or left over is an error."""

    def __init__(self, tlvs: Sequence[Tlv], where: str) -> None:
        self._tlvs = tlvs
        self._index = 0
        self.where = where

    def peek(self) -> int | None:
        """Tag of the next TLV, or None at the end."""
        return self._tlvs[self._index].tag if self._index < len(self._tlvs) else None

    def take(self, *tags: int) -> Tlv:
        """The next TLV, which must carry one of ``tags``."""
        expected = " or ".join(_tag_name(t) for t in tags)
        if self._index >= len(self._tlvs):
            raise TokenFormatError(f"{self.where}: missing {expected} at position {self._index}")
        item = self._tlvs[self._index]
        if item.tag not in tags:
            raise TokenFormatError(
                f"{self.where}: expected {expected} at position {self._index}, found {_tag_name(item.tag)}"
            )
        self._index += 1
        return item

    def take_u32(self, tag: int) -> int:
        value = self.take(tag).value
        if len(value) != 4:
            raise TokenFormatError(f"{self.where}: {_tag_name(tag)} must hold 4 bytes, not {len(value)}")
        return int(struct.unpack("<I", value)[0])

    def take_u64(self, tag: int) -> int:
        value = self.take(tag).value
        if len(value) != 8:
            raise TokenFormatError(f"{self.where}: {_tag_name(tag)} must hold 8 bytes, not {len(value)}")
        return int(struct.unpack("<Q", value)[0])

    def take_utf8(self, tag: int) -> str:
        value = self.take(tag).value
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TokenFormatError(f"{self.where}: {_tag_name(tag)} is not valid UTF-8") from exc

    def end(self) -> None:
        """Require that every TLV has been consumed."""
        if self._index < len(self._tlvs):
            raise TokenFormatError(
                f"{self.where}: unexpected {_tag_name(self._tlvs[self._index].tag)} at position {self._index}"
            )


# --------------------------------------------------------------------------------------------------
# DER helpers (asn1crypto): signature-with-algorithm and approver public keys
# --------------------------------------------------------------------------------------------------


class _AlgorithmIdentifier(core.Sequence):
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True}),
    ]


class _SignatureWithAlgorithm(core.Sequence):
    """``SEQUENCE{AlgorithmIdentifier, BIT STRING signature}`` — JCE's "derified" signature."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("algorithm", _AlgorithmIdentifier), ("signature", core.OctetBitString),
    ]


class _SubjectPublicKeyInfo(core.Sequence):
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("algorithm", _AlgorithmIdentifier), ("public_key", core.BitString),
    ]


def _load_der(spec: type[core.Sequence], der: bytes, what: str) -> core.Sequence:
    """Parse ``der`` as ``spec`` and insist on canonical DER (re-encoding gives the same bytes)."""
    try:
        value = spec.load(bytes(der), strict=True)
        canonical = value.dump(force=True)
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, … on malformed input
        raise TokenFormatError(f"{what} is not valid DER: {exc}") from exc
    if canonical != bytes(der):
        raise TokenFormatError(f"{what} is not canonical DER")
    return value


def signature_with_algorithm(signature: bytes, algorithm_oid: str = ECDSA_WITH_SHA256) -> bytes:
    """DER ``SEQUENCE{SEQUENCE{OID, NULL}, BIT STRING(0x00 ‖ signature)}`` (the ``DER_SIGNATURE`` value).

    ``signature`` is the signature exactly as the JCE produces it (DER ECDSA-Sig-Value for ECDSA,
    raw bytes for RSA/EdDSA). Parameters are an explicit NULL, as in the reference vector, except for
    EdDSA where RFC 8410 forbids them.
    """
    algorithm: dict[str, object] = {"algorithm": algorithm_oid}
    if algorithm_oid not in _OIDS_WITHOUT_PARAMETERS:
        algorithm["parameters"] = core.Null()
    try:
        value = _SignatureWithAlgorithm(
            {"algorithm": _AlgorithmIdentifier(algorithm), "signature": bytes(signature)}
        )
        return bytes(value.dump())
    except (ValueError, TypeError) as exc:
        raise TokenFormatError(f"cannot encode a signature with algorithm {algorithm_oid!r}: {exc}") from exc


def parse_signature_with_algorithm(der: bytes) -> tuple[str, bytes]:
    """``(algorithm OID, signature)`` from a DER signature-with-algorithm; TokenFormatError if malformed."""
    value = _load_der(_SignatureWithAlgorithm, der, "signature with algorithm")
    return value["algorithm"]["algorithm"].dotted, bytes(value["signature"].native)


def spki_algorithm(der: bytes) -> str:
    """Algorithm OID of a DER SubjectPublicKeyInfo; TokenFormatError if it is not one."""
    return str(_load_der(_SubjectPublicKeyInfo, der, "public key")["algorithm"]["algorithm"].dotted)


def certificate_public_key(der: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a DER X.509 certificate, byte for byte as embedded."""
    try:
        cert = x509.Certificate.load(bytes(der), strict=True)
        spki = bytes(cert["tbs_certificate"]["subject_public_key_info"].dump())
    except Exception as exc:  # asn1crypto raises a variety of types on malformed input
        raise TokenFormatError(f"certificate is not valid DER: {exc}") from exc
    spki_algorithm(spki)
    return spki


def approver_public_key(der: bytes) -> bytes:
    """SPKI DER of an approver given as an SPKI or as an X.509 certificate (bytes as embedded)."""
    try:
        spki_algorithm(der)
        return bytes(der)
    except TokenFormatError:
        pass
    try:
        return certificate_public_key(der)
    except TokenFormatError as exc:
        raise TokenFormatError("approver is neither a DER public key nor a DER certificate") from exc


def _der_element_size(data: bytes, offset: int, what: str) -> int:
    """Size of the definite-length DER element at ``offset`` (header included)."""
    if len(data) - offset < 2:
        raise TokenFormatError(f"{what}: truncated DER header")
    if data[offset] != 0x30:
        raise TokenFormatError(f"{what}: expected a DER SEQUENCE, found tag 0x{data[offset]:02X}")
    first = data[offset + 1]
    if first < 0x80:
        header, length = 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise TokenFormatError(f"{what}: unsupported DER length form")
        if len(data) - offset < 2 + count:
            raise TokenFormatError(f"{what}: truncated DER length")
        header, length = 2 + count, int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
    if header + length > len(data) - offset:
        raise TokenFormatError(f"{what}: DER element of {header + length} bytes exceeds the data")
    return header + length


# --------------------------------------------------------------------------------------------------
# HSM timestamp
# --------------------------------------------------------------------------------------------------


def _payload_tag(tag: int) -> Tag:
    if tag not in PAYLOAD_TAGS:
        raise TokenFormatError(
            f"payload tag must be EKA_SIGN_PAYLOAD or EKA_MODIFY_PAYLOAD, not {_tag_name(tag)}"
        )
    return Tag(tag)


@dataclass(frozen=True, slots=True)
class HsmTimestamp:
    """The HSM timestamp over an operation payload (reference §6.5; task level-4 ``timestamp``).

    Blob = ``u32 len ‖ TLV(payload_tag, payload) ‖ TLV(SECONDS_SINCE_EPOCH, u64 seconds) ‖
    TLV(LABEL_UTF8_STRING, key_name)``. ``seconds`` is Unix time in seconds; ``key_name`` is the
    label of the partition's timestamp key. The timestamp signature (SHA256withECDSA) covers the
    whole :meth:`encode` output, length header included.
    """

    payload: bytes
    payload_tag: Tag
    seconds: int
    key_name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload_tag", _payload_tag(self.payload_tag))
        if not 0 <= self.seconds <= U64_MAX:
            raise TokenFormatError(f"timestamp seconds {self.seconds} out of range")

    @classmethod
    def at(
        cls, moment: datetime, payload: bytes, key_name: str, payload_tag: Tag = Tag.EKA_SIGN_PAYLOAD
    ) -> HsmTimestamp:
        """A timestamp for ``moment`` (aware datetime; sub-second precision is dropped)."""
        return cls(payload, payload_tag, int(moment.timestamp()), key_name)

    @property
    def moment(self) -> datetime:
        """``seconds`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.seconds, UTC)

    def encode(self) -> bytes:
        return encode_container([
            (self.payload_tag, self.payload),
            (Tag.SECONDS_SINCE_EPOCH, u64(self.seconds)),
            (Tag.LABEL_UTF8_STRING, self.key_name.encode("utf-8")),
        ])

    @classmethod
    def decode(cls, data: bytes) -> HsmTimestamp:
        reader = TlvReader(decode_container(data, where="timestamp"), "timestamp")
        payload = reader.take(*PAYLOAD_TAGS)
        seconds = reader.take_u64(Tag.SECONDS_SINCE_EPOCH)
        key_name = reader.take_utf8(Tag.LABEL_UTF8_STRING)
        reader.end()
        return cls(payload.value, Tag(payload.tag), seconds, key_name)


# --------------------------------------------------------------------------------------------------
# approvalToBeSigned
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalToBeSigned:
    """The challenge an approver signs (task ``approvalToBeSigned``, reference §6.5).

    Timed form: ``u32 len ‖ TLV(EKA_OPERATION, u32) ‖ TLV(LABEL, key label) ‖ TLV(EKA_TIMESTAMP,
    timestamp blob) ‖ TLV(DER_SIGNATURE, timestamp_signature_der) ‖ TLV(payload_tag, payload)``.
    Time-less form (every token of the rule has timelock = timeout = 0): no timestamp TLVs and an
    empty label. ``timestamp`` is the :class:`HsmTimestamp` blob including its own u32 header;
    ``timestamp_signature_der`` is the full DER ``SEQUENCE{AlgorithmIdentifier, BIT STRING}``
    (see :func:`signature_with_algorithm`). Both are present or both are None. The timestamp must be
    over the same payload and payload tag as the token.
    """

    operation: Operation
    label: str
    timestamp: bytes | None
    timestamp_signature_der: bytes | None
    payload: bytes
    payload_tag: Tag = Tag.EKA_SIGN_PAYLOAD

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "operation", Operation(self.operation))
        except ValueError as exc:
            raise TokenFormatError(f"unknown EkaOperation value {self.operation}") from exc
        object.__setattr__(self, "payload_tag", _payload_tag(self.payload_tag))
        if (self.timestamp is None) != (self.timestamp_signature_der is None):
            raise TokenFormatError("timestamp and timestamp signature must both be present or both absent")
        if self.timestamp is not None and self.timestamp_signature_der is not None:
            stamp = HsmTimestamp.decode(self.timestamp)
            if stamp.payload != self.payload or stamp.payload_tag != self.payload_tag:
                raise TokenFormatError("the HSM timestamp is over a different payload than the token")
            parse_signature_with_algorithm(self.timestamp_signature_der)

    @classmethod
    def time_less(
        cls, operation: Operation, payload: bytes, payload_tag: Tag | None = None
    ) -> ApprovalToBeSigned:
        """The token of a rule without time limits: operation, empty label, payload only."""
        tag = operation.payload_tag if payload_tag is None else payload_tag
        return cls(operation, "", None, None, payload, tag)

    @classmethod
    def timed(
        cls, operation: Operation, label: str, timestamp: HsmTimestamp, timestamp_signature: bytes,
        algorithm_oid: str = ECDSA_WITH_SHA256,
    ) -> ApprovalToBeSigned:
        """The timed token from an HSM timestamp and its raw (JCE-format) signature."""
        signature_der = signature_with_algorithm(timestamp_signature, algorithm_oid)
        return cls(
            operation, label, timestamp.encode(), signature_der, timestamp.payload, timestamp.payload_tag
        )

    @property
    def is_time_less(self) -> bool:
        return self.timestamp is None

    @property
    def hsm_timestamp(self) -> HsmTimestamp | None:
        """The decoded timestamp of a timed token."""
        return None if self.timestamp is None else HsmTimestamp.decode(self.timestamp)

    @property
    def timestamp_signature(self) -> bytes | None:
        """The raw timestamp signature (DER ECDSA-Sig-Value) out of ``timestamp_signature_der``."""
        if self.timestamp_signature_der is None:
            return None
        return parse_signature_with_algorithm(self.timestamp_signature_der)[1]

    def encode(self) -> bytes:
        tlvs: list[tuple[int, bytes]] = [
            (Tag.EKA_OPERATION, u32(self.operation)),
            (Tag.LABEL_UTF8_STRING, self.label.encode("utf-8")),
        ]
        if self.timestamp is not None and self.timestamp_signature_der is not None:
            tlvs += [(Tag.EKA_TIMESTAMP, self.timestamp), (Tag.DER_SIGNATURE, self.timestamp_signature_der)]
        tlvs.append((self.payload_tag, self.payload))
        return encode_container(tlvs)

    @classmethod
    def decode(cls, data: bytes) -> ApprovalToBeSigned:
        reader = TlvReader(decode_container(data, where="approvalToBeSigned"), "approvalToBeSigned")
        operation = reader.take_u32(Tag.EKA_OPERATION)
        label = reader.take_utf8(Tag.LABEL_UTF8_STRING)
        timestamp = signature = None
        if reader.peek() == Tag.EKA_TIMESTAMP:
            timestamp = reader.take(Tag.EKA_TIMESTAMP).value
            signature = reader.take(Tag.DER_SIGNATURE).value
        payload = reader.take(*PAYLOAD_TAGS)
        reader.end()
        try:
            kind = Operation(operation)
        except ValueError:
            raise TokenFormatError(f"approvalToBeSigned: unknown EkaOperation value {operation}") from None
        return cls(kind, label, timestamp, signature, payload.value, Tag(payload.tag))


# --------------------------------------------------------------------------------------------------
# signedApprovals element (PrimusAuthorizationToken)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedApproval:
    """One ``signedApprovals`` element: a serialised ``PrimusAuthorizationToken`` (reference §6.8).

    Layout = ``u32 LE size ‖ approvalToBeSigned ‖ DER signature-with-algorithm ‖ DER approver``.
    GAP decision: the reference only says "header containing the total size"; we use a u32 LE
    holding the length of everything *after* the header, exactly like every other container of this
    format family, and no flags. Parts 2 to 4 are self-delimiting (u32-prefixed container, DER, DER).
    ``approver`` is the approver's DER SubjectPublicKeyInfo or X.509 certificate (the JCE token
    distinguishes both). ``approval_to_be_signed`` is kept as bytes: it is what the signature covers.
    """

    approval_to_be_signed: bytes
    signature_der: bytes  # SEQUENCE{AlgorithmIdentifier, BIT STRING signature}
    approver: bytes

    def __post_init__(self) -> None:
        ApprovalToBeSigned.decode(self.approval_to_be_signed)
        parse_signature_with_algorithm(self.signature_der)
        approver_public_key(self.approver)

    @classmethod
    def create(
        cls, token: ApprovalToBeSigned | bytes, signature: bytes, algorithm_oid: str, approver: bytes
    ) -> SignedApproval:
        """From a token, the approver's raw (JCE-format) signature over it, and its key or certificate."""
        raw = token.encode() if isinstance(token, ApprovalToBeSigned) else bytes(token)
        return cls(raw, signature_with_algorithm(signature, algorithm_oid), bytes(approver))

    @property
    def approval(self) -> ApprovalToBeSigned:
        return ApprovalToBeSigned.decode(self.approval_to_be_signed)

    @property
    def signature_algorithm_oid(self) -> str:
        return parse_signature_with_algorithm(self.signature_der)[0]

    @property
    def signature(self) -> bytes:
        """The approver's raw signature over ``approval_to_be_signed``."""
        return parse_signature_with_algorithm(self.signature_der)[1]

    @property
    def approver_public_key(self) -> bytes:
        """The approver's SPKI DER (taken out of the certificate when one was given)."""
        return approver_public_key(self.approver)

    def encode(self) -> bytes:
        body = self.approval_to_be_signed + self.signature_der + self.approver
        return u32(len(body)) + body

    @classmethod
    def decode(cls, data: bytes) -> SignedApproval:
        data = bytes(data)
        where = "signedApproval"
        size = container_size(data, where=where)
        if size != len(data):
            raise TokenFormatError(f"{where}: {len(data) - size} trailing bytes after the declared length")
        token_end = 4 + container_size(data, 4, where=f"{where} approvalToBeSigned")
        signature_end = token_end + _der_element_size(data, token_end, f"{where} signature")
        approver_end = signature_end + _der_element_size(data, signature_end, f"{where} approver")
        if approver_end != len(data):
            raise TokenFormatError(f"{where}: {len(data) - approver_end} trailing bytes after the approver")
        return cls(data[4:token_end], data[token_end:signature_end], data[signature_end:approver_end])
