"""The SKA TLV codec and tokens: reference vectors byte for byte, round trips, malformed input."""

from __future__ import annotations

import base64
import contextlib
import struct
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsmgate.domain.ska.approval_token import (
    ECDSA_WITH_SHA256,
    ApprovalToBeSigned,
    HsmTimestamp,
    Operation,
    SignedApproval,
    Tag,
    Tlv,
    TokenFormatError,
    approver_public_key,
    certificate_public_key,
    decode_container,
    decode_tlvs,
    encode_container,
    encode_tlv,
    parse_signature_with_algorithm,
    signature_with_algorithm,
    spki_algorithm,
)

# §6.3 live level-1 example: the same token as the §6.5 test vector.
VECTOR_B64 = (
    "4AAAADsABAABAAAAAhASAFRTQl9UVVRPUklBTF8xLVJTQQAAVBBAADwAAABXEBYAQXBwcm92ZVNpZ25UYXNrUGF5bG9hZAAABwEI"
    "ANcU814AAAAAAhANAHRpbWVzdGFtcC1rZXkAAABWEFkAMFcwDAYIKoZIzj0EAwIFAANHADBEAiADPniQDGELMUTqJCJ17kW3bUIn"
    "XIf8dy9mwsseJ7voJAIgK3Kh4JjkR+RDugYKlp4x3M6UQIXkyQ5OuavkL0V5b5sAAABXEBYAQXBwcm92ZVNpZ25UYXNrUGF5bG9h"
    "ZAAA"
)
VECTOR = base64.b64decode(VECTOR_B64)
# The raw timestamp signature of the vector: §6.5 prints only its start ("3044…").
VECTOR_TIMESTAMP_SIGNATURE = bytes.fromhex(
    "30440220033e78900c610b3144ea242275ee45b76d42275c87fc772f66c2cb1e27bbe824"
    "02202b72a1e098e447e443ba060a969e31dcce944085e4c90e4eb9abe42f45796f9b"
)
# Appendix A.4 (level 5): timestamp blob, its signature, and the start of timestampSignatureWithAlgorithm.
A4_TIMESTAMP = base64.b64decode("MAAAAFcQCABIYWxsb2FzZAcBCABW8bxmAAAAAAIQEgB0ZXN0LXRpbWVzdGFtcC1rZXkAAA==")
A4_TIMESTAMP_SIGNATURE = base64.b64decode(
    "MEQCIAU0QU/nlA/5f5BmgubWvAJuR87iB/BFlM8usmJwm1OjAiA/QZmxcNsNA6ww0OGfIQXUoylyIiYBEooygNyot0BUFA=="
)
A4_SIGNATURE_WITH_ALGORITHM_PREFIX = base64.b64decode("MEUwDAYIKoZIzj0EAwIFAAM1ADAAAABX")


def doc_listing_bytes() -> bytes:
    """The §6.5 test vector assembled from the hex listing in the reference, field by field."""
    parts = [
        "e0000000",
        "3b00 0400 01000000",
        "0210 1200" + b"TSB_TUTORIAL_1-RSA".hex() + "0000",
        "5410 4000",
        "3c000000",
        "5710 1600" + b"ApproveSignTaskPayload".hex() + "0000",
        "0701 0800 d714f35e00000000",
        "0210 0d00" + b"timestamp-key".hex() + "000000",
        "5610 5900 3057300c06082a8648ce3d0403020500034700" + VECTOR_TIMESTAMP_SIGNATURE.hex() + "000000",
        "5710 1600" + b"ApproveSignTaskPayload".hex() + "0000",
    ]
    return bytes.fromhex("".join(parts).replace(" ", ""))


def spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


EC_KEY = ec.generate_private_key(ec.SECP256R1())


def self_signed(key: ec.EllipticCurvePrivateKey, cn: str = "approver") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now.replace(year=now.year + 1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------------------------------
# Reference vectors
# --------------------------------------------------------------------------------------------------


class TestReferenceVectors:
    def test_doc_listing_is_the_live_token(self) -> None:
        assert doc_listing_bytes() == VECTOR
        assert len(VECTOR) == 4 + 224

    def test_decode_every_field(self) -> None:
        token = ApprovalToBeSigned.decode(VECTOR)
        assert token.operation is Operation.USE
        assert token.label == "TSB_TUTORIAL_1-RSA"
        assert token.payload == b"ApproveSignTaskPayload"
        assert token.payload == base64.b64decode("QXBwcm92ZVNpZ25UYXNrUGF5bG9hZA==")
        assert token.payload_tag is Tag.EKA_SIGN_PAYLOAD
        assert not token.is_time_less
        stamp = token.hsm_timestamp
        assert stamp is not None
        assert stamp.seconds == 1592988887
        assert stamp.moment == datetime(2020, 6, 24, 8, 54, 47, tzinfo=UTC)
        assert stamp.key_name == "timestamp-key"
        assert stamp.payload == b"ApproveSignTaskPayload"
        assert token.timestamp is not None and len(token.timestamp) == 64
        assert token.timestamp_signature_der is not None and len(token.timestamp_signature_der) == 89
        assert token.timestamp_signature == VECTOR_TIMESTAMP_SIGNATURE
        assert parse_signature_with_algorithm(token.timestamp_signature_der) == (
            ECDSA_WITH_SHA256, VECTOR_TIMESTAMP_SIGNATURE,
        )

    def test_reencode_is_byte_exact(self) -> None:
        assert ApprovalToBeSigned.decode(VECTOR).encode() == VECTOR

    def test_rebuild_from_fields_is_byte_exact(self) -> None:
        stamp = HsmTimestamp.at(
            datetime(2020, 6, 24, 8, 54, 47, tzinfo=UTC), b"ApproveSignTaskPayload", "timestamp-key"
        )
        token = ApprovalToBeSigned.timed(
            Operation.USE, "TSB_TUTORIAL_1-RSA", stamp, VECTOR_TIMESTAMP_SIGNATURE
        )
        assert token.encode() == VECTOR
        assert base64.b64encode(token.encode()).decode() == VECTOR_B64

    def test_der_signature_value_matches_vector(self) -> None:
        der = signature_with_algorithm(VECTOR_TIMESTAMP_SIGNATURE)
        assert der.hex().startswith("3057300c06082a8648ce3d0403020500034700")
        assert der == ApprovalToBeSigned.decode(VECTOR).timestamp_signature_der

    def test_level5_timestamp_blob(self) -> None:
        stamp = HsmTimestamp.decode(A4_TIMESTAMP)
        assert stamp.payload == b"Halloasd" == base64.b64decode("SGFsbG9hc2Q=")
        assert stamp.payload_tag is Tag.EKA_SIGN_PAYLOAD
        assert stamp.seconds == 1723658582
        assert stamp.moment == datetime(2024, 8, 14, 18, 3, 2, tzinfo=UTC)
        assert stamp.key_name == "test-timestamp-key"
        assert stamp.encode() == A4_TIMESTAMP
        rebuilt = HsmTimestamp(b"Halloasd", Tag.EKA_SIGN_PAYLOAD, 1723658582, "test-timestamp-key")
        assert rebuilt.encode() == A4_TIMESTAMP

    def test_level5_token_from_its_parts(self) -> None:
        """A.4: the token embeds the timestamp blob and ends its DER signature with timestampSignature."""
        stamp = HsmTimestamp.decode(A4_TIMESTAMP)
        # The doc shortens the 54-byte label ("TESTKEY2…/44'/0'/0'/0'"); any 54-byte label gives its prefix.
        label = "TESTKEY2" + "x" * 46
        token = ApprovalToBeSigned.timed(Operation.USE, label, stamp, A4_TIMESTAMP_SIGNATURE)
        data = token.encode()
        assert data.startswith(base64.b64decode("6AAAADsABAABAAAAAhA2AFRFU1RLRVky"))
        assert len(data) == 4 + 0xE8
        decoded = ApprovalToBeSigned.decode(data)
        assert decoded.timestamp == A4_TIMESTAMP
        assert decoded.timestamp_signature_der is not None
        assert decoded.timestamp_signature_der.endswith(A4_TIMESTAMP_SIGNATURE)

    def test_level5_conflicting_signature_with_algorithm_form(self) -> None:
        """The helper reproduces even the 2.1 CONFLICT form (blob inside the BIT STRING) byte for byte."""
        assert signature_with_algorithm(A4_TIMESTAMP).startswith(A4_SIGNATURE_WITH_ALGORITHM_PREFIX)


# --------------------------------------------------------------------------------------------------
# TLV / container codec
# --------------------------------------------------------------------------------------------------


class TestTlv:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (b"", "34120000"),
            (b"a", "3412010061000000"),
            (b"ab", "341202006162" + "0000"),
            (b"abc", "34120300616263" + "00"),
            (b"abcd", "3412040061626364"),
            (b"abcde", "341205006162636465" + "000000"),
        ],
    )
    def test_padding_not_counted(self, value: bytes, expected: str) -> None:
        assert encode_tlv(0x1234, value).hex() == expected
        assert decode_tlvs(bytes.fromhex(expected)) == [Tlv(0x1234, value)]

    def test_container_counts_padding(self) -> None:
        data = encode_container([(Tag.LABEL_UTF8_STRING, b"x")])
        assert data.hex() == "08000000" + "02100100" + "78000000"
        assert decode_container(data) == [Tlv(Tag.LABEL_UTF8_STRING, b"x")]

    def test_empty_container(self) -> None:
        assert encode_container([]) == b"\0\0\0\0"
        assert decode_container(b"\0\0\0\0") == []

    def test_value_too_long(self) -> None:
        with pytest.raises(TokenFormatError):
            encode_tlv(Tag.EKA_SIGN_PAYLOAD, bytes(0x10000))
        assert len(encode_tlv(Tag.EKA_SIGN_PAYLOAD, bytes(0xFFFF))) == 4 + 0xFFFF + 1

    def test_tag_out_of_range(self) -> None:
        with pytest.raises(TokenFormatError):
            encode_tlv(0x10000, b"")

    @pytest.mark.parametrize(
        "data",
        [
            "341201",  # truncated header
            "34120400616263",  # value shorter than declared
            "3412030061626300" + "34",  # trailing partial header
            "34120300616263",  # padding missing
            "3412030061626301",  # non-zero padding
        ],
    )
    def test_malformed_tlvs(self, data: str) -> None:
        with pytest.raises(TokenFormatError):
            decode_tlvs(bytes.fromhex(data))

    @pytest.mark.parametrize(
        "data",
        [
            "",
            "080000",
            "09000000" + "02100100" + "78000000",  # header larger than the data
            "04000000" + "02100100" + "78000000",  # header smaller: trailing bytes
            "08000000" + "02100100" + "78000000" + "00",  # trailing garbage
        ],
    )
    def test_malformed_containers(self, data: str) -> None:
        with pytest.raises(TokenFormatError):
            decode_container(bytes.fromhex(data))

    def test_error_is_value_error(self) -> None:
        assert issubclass(TokenFormatError, ValueError)


# --------------------------------------------------------------------------------------------------
# HsmTimestamp / ApprovalToBeSigned
# --------------------------------------------------------------------------------------------------


def container(*tlvs: tuple[int, bytes]) -> bytes:
    return encode_container(tlvs)


GOOD_STAMP = HsmTimestamp(b"payload", Tag.EKA_SIGN_PAYLOAD, 1_700_000_000, "timestamp-key")
GOOD_SIG = signature_with_algorithm(VECTOR_TIMESTAMP_SIGNATURE)
OP = (Tag.EKA_OPERATION, struct.pack("<I", 1))
LABEL = (Tag.LABEL_UTF8_STRING, b"KEY")
STAMP = (Tag.EKA_TIMESTAMP, GOOD_STAMP.encode())
SIG = (Tag.DER_SIGNATURE, GOOD_SIG)
PAYLOAD = (Tag.EKA_SIGN_PAYLOAD, b"payload")
SECONDS = (Tag.SECONDS_SINCE_EPOCH, bytes(8))
KEY_NAME = (Tag.LABEL_UTF8_STRING, b"k")


class TestHsmTimestamp:
    def test_round_trip_modify_payload(self) -> None:
        stamp = HsmTimestamp(b"\x01\x02", Tag.EKA_MODIFY_PAYLOAD, 0, "")
        assert HsmTimestamp.decode(stamp.encode()) == stamp

    @pytest.mark.parametrize(
        "data",
        [
            container(SECONDS, PAYLOAD, KEY_NAME),  # order
            container(PAYLOAD, (Tag.SECONDS_SINCE_EPOCH, bytes(4)), KEY_NAME),  # u64 size
            container(PAYLOAD, SECONDS),  # key name missing
            container(PAYLOAD, SECONDS, (Tag.LABEL_UTF8_STRING, b"\xff")),  # UTF-8
            container(PAYLOAD, SECONDS, KEY_NAME, LABEL),  # extra TLV
            container((Tag.EKA_OPERATION, b"x"), SECONDS, KEY_NAME),  # bad payload tag
        ],
    )
    def test_malformed(self, data: bytes) -> None:
        with pytest.raises(TokenFormatError):
            HsmTimestamp.decode(data)

    def test_invalid_construction(self) -> None:
        with pytest.raises(TokenFormatError):
            HsmTimestamp(b"", Tag.LABEL_UTF8_STRING, 0, "k")
        with pytest.raises(TokenFormatError):
            HsmTimestamp(b"", Tag.EKA_SIGN_PAYLOAD, -1, "k")


class TestApprovalToBeSigned:
    def test_time_less_form(self) -> None:
        token = ApprovalToBeSigned.time_less(Operation.USE, b"payload")
        expected = "18000000" + "3b000400" + "01000000" + "02100000" + "57100700" + b"payload".hex() + "00"
        assert token.encode().hex() == expected
        assert token.is_time_less and token.hsm_timestamp is None and token.timestamp_signature is None
        assert ApprovalToBeSigned.decode(token.encode()) == token

    def test_modify_uses_modify_payload(self) -> None:
        token = ApprovalToBeSigned.time_less(Operation.MODIFY, b"\x00\x01")
        assert token.payload_tag is Tag.EKA_MODIFY_PAYLOAD
        assert decode_container(token.encode())[-1].tag == Tag.EKA_MODIFY_PAYLOAD
        assert decode_container(token.encode())[0].value == b"\x04\x00\x00\x00"

    def test_operation_values(self) -> None:
        assert [int(op) for op in Operation] == [1, 2, 3, 4]
        assert Operation.BLOCK.payload_tag is Tag.EKA_SIGN_PAYLOAD

    def test_good_container_decodes(self) -> None:
        token = ApprovalToBeSigned.decode(container(OP, LABEL, STAMP, SIG, PAYLOAD))
        assert token.hsm_timestamp == GOOD_STAMP

    @pytest.mark.parametrize(
        "tlvs",
        [
            pytest.param((LABEL, OP, STAMP, SIG, PAYLOAD), id="operation-after-label"),
            pytest.param((OP, STAMP, SIG, PAYLOAD), id="label-missing"),
            pytest.param((OP, LABEL, SIG, STAMP, PAYLOAD), id="signature-before-timestamp"),
            pytest.param((OP, LABEL, STAMP, PAYLOAD), id="signature-missing"),
            pytest.param((OP, LABEL, SIG, PAYLOAD), id="timestamp-missing"),
            pytest.param((OP, LABEL, STAMP, SIG), id="payload-missing"),
            pytest.param((OP, LABEL, STAMP, SIG, PAYLOAD, PAYLOAD), id="payload-twice"),
            pytest.param((OP, LABEL, PAYLOAD, STAMP, SIG), id="payload-first"),
            pytest.param((OP, LABEL, STAMP, SIG, PAYLOAD, (0x7777, b"")), id="unknown-tag"),
            pytest.param(((Tag.EKA_OPERATION, b"\x01\x00"), LABEL, PAYLOAD), id="operation-u16"),
            pytest.param(((Tag.EKA_OPERATION, struct.pack("<I", 9)), LABEL, PAYLOAD), id="operation-unknown"),
            pytest.param((OP, (Tag.LABEL_UTF8_STRING, b"\xc3\x28"), PAYLOAD), id="label-not-utf8"),
            pytest.param((OP, LABEL, (Tag.EKA_TIMESTAMP, b"junk"), SIG, PAYLOAD), id="timestamp-junk"),
            pytest.param((OP, LABEL, STAMP, (Tag.DER_SIGNATURE, b"\x30\x00"), PAYLOAD), id="signature-junk"),
            pytest.param(
                (OP, LABEL, STAMP, (Tag.DER_SIGNATURE, VECTOR_TIMESTAMP_SIGNATURE), PAYLOAD),
                id="signature-without-algorithm",
            ),
            pytest.param(
                (OP, LABEL, STAMP, SIG, (Tag.EKA_SIGN_PAYLOAD, b"other")), id="timestamp-other-payload"
            ),
            pytest.param(
                (OP, LABEL, STAMP, SIG, (Tag.EKA_MODIFY_PAYLOAD, b"payload")), id="timestamp-other-tag"
            ),
        ],
    )
    def test_malformed(self, tlvs: tuple[tuple[int, bytes], ...]) -> None:
        with pytest.raises(TokenFormatError):
            ApprovalToBeSigned.decode(container(*tlvs))

    def test_every_truncation_of_the_vector_is_rejected(self) -> None:
        for end in range(len(VECTOR)):
            with pytest.raises(TokenFormatError):
                ApprovalToBeSigned.decode(VECTOR[:end])

    @pytest.mark.parametrize("suffix", [b"\x00", b"\x00\x00\x00\x00", b"garbage!"])
    def test_trailing_garbage_is_rejected(self, suffix: bytes) -> None:
        with pytest.raises(TokenFormatError):
            ApprovalToBeSigned.decode(VECTOR + suffix)

    def test_wrong_outer_length_is_rejected(self) -> None:
        for length in (0, 220, 223, 225, 228, 0xFFFFFFFF):
            with pytest.raises(TokenFormatError):
                ApprovalToBeSigned.decode(struct.pack("<I", length) + VECTOR[4:])

    def test_half_a_timestamp_cannot_be_built(self) -> None:
        with pytest.raises(TokenFormatError):
            ApprovalToBeSigned(Operation.USE, "k", GOOD_STAMP.encode(), None, b"payload")
        with pytest.raises(TokenFormatError):
            ApprovalToBeSigned(Operation.USE, "k", None, GOOD_SIG, b"payload")

    def test_unknown_operation_cannot_be_built(self) -> None:
        with pytest.raises(TokenFormatError):
            ApprovalToBeSigned(7, "", None, None, b"")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# DER helpers
# --------------------------------------------------------------------------------------------------


class TestDer:
    def test_ed25519_has_no_parameters(self) -> None:
        der = signature_with_algorithm(b"\x01" * 64, "1.3.101.112")
        assert der[:9].hex() == "304a300506032b6570"
        assert parse_signature_with_algorithm(der) == ("1.3.101.112", b"\x01" * 64)

    def test_rsa_has_null_parameters(self) -> None:
        der = signature_with_algorithm(b"\x02" * 256, "1.2.840.113549.1.1.11")
        assert bytes.fromhex("06092a864886f70d01010b0500") in der

    @pytest.mark.parametrize(
        "der",
        [
            "",
            "3000",
            "300a300806062a8648ce3d04",  # OID only, no BIT STRING
            "3010300c06082a8648ce3d04030205000300",  # empty BIT STRING (no unused-bits byte)
            "3011300c06082a8648ce3d0403020500030201ff",  # non-zero unused bits
            "308111300c06082a8648ce3d040302050003020000",  # long-form length where short form fits
            "3011300c06082a8648ce3d04030205000302000000",  # trailing byte
        ],
    )
    def test_parse_rejects(self, der: str) -> None:
        with pytest.raises(TokenFormatError):
            parse_signature_with_algorithm(bytes.fromhex(der))

    def test_approver_key_from_spki_or_certificate(self) -> None:
        key = EC_KEY.public_key()
        assert approver_public_key(spki(key)) == spki(key)
        assert approver_public_key(self_signed(EC_KEY)) == spki(key)
        assert certificate_public_key(self_signed(EC_KEY)) == spki(key)
        assert spki_algorithm(spki(key)) == "1.2.840.10045.2.1"
        with pytest.raises(TokenFormatError):
            approver_public_key(b"\x30\x03\x02\x01\x01")
        with pytest.raises(TokenFormatError):
            certificate_public_key(spki(key))


# --------------------------------------------------------------------------------------------------
# SignedApproval
# --------------------------------------------------------------------------------------------------


def _ec_signed(token: ApprovalToBeSigned, approver: bytes | None = None) -> SignedApproval:
    signature = EC_KEY.sign(token.encode(), ec.ECDSA(hashes.SHA256()))
    return SignedApproval.create(token, signature, ECDSA_WITH_SHA256, approver or spki(EC_KEY.public_key()))


class TestSignedApproval:
    def test_layout(self) -> None:
        signed = _ec_signed(ApprovalToBeSigned.decode(VECTOR))
        data = signed.encode()
        assert struct.unpack_from("<I", data)[0] == len(data) - 4
        assert data[4 : 4 + len(VECTOR)] == VECTOR
        assert data.endswith(spki(EC_KEY.public_key()))
        assert SignedApproval.decode(data) == signed

    @pytest.mark.parametrize("kind", ["ec", "rsa", "ed25519", "certificate"])
    def test_signature_verifies_after_round_trip(self, kind: str) -> None:
        token = ApprovalToBeSigned.decode(VECTOR)
        raw = token.encode()
        if kind == "rsa":
            key = rsa.generate_private_key(65537, 2048)
            signed = SignedApproval.create(
                token, key.sign(raw, padding.PKCS1v15(), hashes.SHA256()), "1.2.840.113549.1.1.11",
                spki(key.public_key()),
            )
        elif kind == "ed25519":
            ed = ed25519.Ed25519PrivateKey.generate()
            signed = SignedApproval.create(token, ed.sign(raw), "1.3.101.112", spki(ed.public_key()))
        elif kind == "certificate":
            signed = _ec_signed(token, self_signed(EC_KEY))
        else:
            signed = _ec_signed(token)
        decoded = SignedApproval.decode(signed.encode())
        public_key: Any = serialization.load_der_public_key(decoded.approver_public_key)
        message = decoded.approval_to_be_signed
        if kind == "rsa":
            public_key.verify(decoded.signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif kind == "ed25519":
            public_key.verify(decoded.signature, message)
        else:
            public_key.verify(decoded.signature, message, ec.ECDSA(hashes.SHA256()))
        assert decoded.approval == token

    def test_malformed(self) -> None:
        data = _ec_signed(ApprovalToBeSigned.decode(VECTOR)).encode()
        bad = [
            data[:-1],
            data + b"\x00",
            struct.pack("<I", len(data)) + data[4:],  # total size including the header: not our layout
            struct.pack("<I", len(data) - 3) + data[4:] + b"\x00",
            data[:4] + b"\xff" + data[5:],  # inner token length broken
        ]
        # approver that is not a SEQUENCE, and a valid DER element that is not a key
        token_and_sig = data[4 : len(data) - len(spki(EC_KEY.public_key()))]
        for approver in (b"\x04\x02ab", b"\x30\x03\x02\x01\x01"):
            body = token_and_sig + approver
            bad.append(struct.pack("<I", len(body)) + body)
        for sample in bad:
            with pytest.raises(TokenFormatError):
                SignedApproval.decode(sample)
        for end in range(0, len(data), 7):
            with pytest.raises(TokenFormatError):
                SignedApproval.decode(data[:end])


# --------------------------------------------------------------------------------------------------
# Properties (hypothesis)
# --------------------------------------------------------------------------------------------------

tlv_lists = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=70)), max_size=8)
labels = st.text(max_size=40)
payload_tags = st.sampled_from([Tag.EKA_SIGN_PAYLOAD, Tag.EKA_MODIFY_PAYLOAD])
timestamps = st.builds(
    HsmTimestamp, st.binary(max_size=300), payload_tags, st.integers(0, 2**64 - 1), labels
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestProperties:
    @PROPERTY
    @given(tlv_lists)
    def test_container_round_trip(self, tlvs: list[tuple[int, bytes]]) -> None:
        data = encode_container(tlvs)
        assert len(data) % 4 == 0
        assert decode_container(data) == [Tlv(tag, value) for tag, value in tlvs]

    @pytest.mark.slow
    @PROPERTY
    @given(timestamps)
    def test_timestamp_round_trip(self, stamp: HsmTimestamp) -> None:
        assert HsmTimestamp.decode(stamp.encode()) == stamp

    @PROPERTY
    @given(
        st.sampled_from(list(Operation)), labels, timestamps, st.binary(min_size=1, max_size=80),
        st.booleans(),
    )
    def test_token_round_trip(
        self, operation: Operation, label: str, stamp: HsmTimestamp, signature: bytes, timed: bool
    ) -> None:
        if timed:
            token = ApprovalToBeSigned.timed(operation, label, stamp, signature)
        else:
            token = ApprovalToBeSigned.time_less(operation, stamp.payload, stamp.payload_tag)
        data = token.encode()
        assert ApprovalToBeSigned.decode(data) == token
        assert ApprovalToBeSigned.decode(data).encode() == data
        signed = SignedApproval.create(data, signature, ECDSA_WITH_SHA256, spki(EC_KEY.public_key()))
        assert SignedApproval.decode(signed.encode()) == signed

    @PROPERTY
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_only_raise_token_format_error(self, data: bytes) -> None:
        decoders = (ApprovalToBeSigned.decode, HsmTimestamp.decode, SignedApproval.decode, decode_container)
        for decoder in decoders:
            with contextlib.suppress(TokenFormatError):
                decoder(data)

    @PROPERTY
    @given(st.lists(st.tuples(st.sampled_from(list(Tag)), st.binary(max_size=100)), max_size=7))
    def test_structured_garbage_only_raises_token_format_error(self, tlvs: list[tuple[int, bytes]]) -> None:
        data = encode_container(tlvs)
        for decoder in (ApprovalToBeSigned.decode, HsmTimestamp.decode):
            with contextlib.suppress(TokenFormatError):
                decoder(data)

    @PROPERTY
    @given(st.integers(0, len(VECTOR) - 1), st.integers(1, 255))
    def test_mutated_vector_is_rejected_or_canonical(self, index: int, xor: int) -> None:
        """Any single-byte change is rejected, or decodes to a token that re-encodes to the same bytes."""
        data = bytearray(VECTOR)
        data[index] ^= xor
        try:
            token = ApprovalToBeSigned.decode(bytes(data))
        except TokenFormatError:
            return
        assert token.encode() == bytes(data)

    @PROPERTY
    @given(st.binary(min_size=1, max_size=40), st.integers(0, 20))
    def test_garbage_inside_signed_approval(self, junk: bytes, cut: int) -> None:
        data = _ec_signed(ApprovalToBeSigned.time_less(Operation.USE, b"p")).encode()
        position = min(4 + cut, len(data))
        mutated = data[:position] + junk + data[position:]
        with contextlib.suppress(TokenFormatError):
            SignedApproval.decode(mutated)
