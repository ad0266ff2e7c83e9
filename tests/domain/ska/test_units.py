"""Pure pieces of the SKA code: addresses against well-known vectors, the guard in front of the
backend, approver signature checks and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hsmgate.domain import errors
from hsmgate.domain.ska import addresses
from hsmgate.domain.ska.approvals import digest_name, parse_timestamp, verify_signature, verify_with_oid
from hsmgate.domain.ska.guard import BLOCKED, USE_NEEDS_APPROVAL, authorized, check_use, guard_bits
from hsmgate.domain.ska.policy import Policy
from hsmgate.hsm.base import KeyType


def _secp256k1_one() -> bytes:
    key = ec.derive_private_key(1, ec.SECP256K1())
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_addresses_of_the_private_key_one() -> None:
    spki = _secp256k1_one()
    assert addresses.address("ETH", spki).hex() == "7e5f4552091a69125d5dfcb7b8c2659029395bdf"
    assert addresses.address("BTC", spki).hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"
    assert addresses.check_format("eth", KeyType.EC, "1.3.132.0.10") == "ETH"
    with pytest.raises(errors.TsbError) as refused:
        addresses.check_format("XRP", KeyType.EC, "1.3.132.0.10")
    assert refused.value.code == 605
    with pytest.raises(errors.TsbError) as wrong_key:
        addresses.check_format("BTC", KeyType.ED, "1.3.101.112")
    assert wrong_key.value.code == 613


def test_guard() -> None:
    """check_use: the guard bits of the key-use gate (``domain/key_use.py``)."""
    bits = {"plain": None, "open": 0, "ska": USE_NEEDS_APPROVAL, "blocked": BLOCKED | USE_NEEDS_APPROVAL}
    check_use("p", "plain", bits["plain"])
    check_use("p", "open", bits["open"])
    with pytest.raises(errors.TsbError) as missing:
        check_use("p", "ska", bits["ska"])
    assert missing.value.code == 401
    check_use("p", "ska", bits["ska"], approved=True)  # signedApprovals verified
    with authorized("p", "ska"):
        check_use("p", "ska", bits["ska"])
        with pytest.raises(errors.TsbError) as blocked:
            check_use("p", "blocked", bits["blocked"])
        assert blocked.value.code == 614
    with authorized("other-partition", "ska"), pytest.raises(errors.TsbError):
        check_use("p", "ska", bits["ska"])
    with authorized("p", "blocked"), pytest.raises(errors.TsbError) as still_blocked:
        check_use("p", "blocked", bits["blocked"])
    assert still_blocked.value.code == 614
    with pytest.raises(errors.TsbError) as approved_but_blocked:
        check_use("p", "blocked", bits["blocked"], approved=True)
    assert approved_but_blocked.value.code == 614


def test_guard_bits() -> None:
    assert guard_bits(Policy()) == 0
    assert guard_bits(Policy(blocked=True)) == BLOCKED
    timed = Policy.from_wire({"ruleUse": {"tokens": [{"name": "t", "timelock": 60, "timeout": 0}]},
                              "keyStatus": {"blocked": False}})
    assert guard_bits(timed) == USE_NEEDS_APPROVAL  # a timelock cannot be met synchronously


def test_approver_signatures() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    data = b"2024-12-01T10:00:00Z"
    signature = key.sign(data, padding.PKCS1v15(), hashes.SHA384())
    oid = verify_signature(spki, "SHA-384", data, signature, field="d", what="w")
    assert oid == "1.2.840.113549.1.1.12" and verify_with_oid(spki, oid, data, signature)
    assert not verify_with_oid(spki, "1.2.840.113549.1.1.11", data, signature)
    with pytest.raises(errors.TsbError) as invalid:
        verify_signature(spki, "SHA-256", data, signature, field="d", what="w")
    assert invalid.value.code == 403
    pss = key.sign(data, padding.PSS(padding.MGF1(hashes.SHA384()), 48), hashes.SHA384())
    with pytest.raises(errors.TsbError):
        verify_signature(spki, "SHA-384", data, pss, field="d", what="w")  # PKCS#1 v1.5 only
    assert digest_name("sha256", "f") == "SHA-256" and digest_name("SHA3-512", "f") == "SHA3-512"
    assert digest_name("EdDSA", "f") == "EdDSA" and digest_name(None, "f") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-12-01T10:00:00.123Z", datetime(2024, 12, 1, 10, 0, 0, 123000, UTC)),
    ("2024-02-08T11:17:30+00:00", datetime(2024, 2, 8, 11, 17, 30, tzinfo=UTC)),
    ("2024-02-08T12:17:30.123456789+01:00", datetime(2024, 2, 8, 11, 17, 30, 123456, UTC)),
])
def test_timestamps(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["2024-12-01 10:00:00Z", "2024-12-01T10:00:00", "2024-13-01T10:00:00Z", ""])
def test_bad_timestamps(text: str) -> None:
    with pytest.raises(errors.ValidationFailed):
        parse_timestamp(text)
