"""SKA policy model: wire JSON and its validation, binary policy, XML fragment, pure evaluation."""

from __future__ import annotations

import base64
import copy
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.x509.oid import NameOID

from hsmgate.domain import errors
from hsmgate.domain.ska.approval_token import (
    ApprovalToBeSigned,
    Operation,
    Tag,
    Tlv,
    TlvReader,
    decode_container,
)
from hsmgate.domain.ska.policy import (
    MAX_SECONDS,
    UNRESOLVED_APPROVER,
    Approval,
    ApprovalType,
    EvaluationStatus,
    Group,
    Policy,
    Rule,
    Token,
    approvers,
    binary_policy,
    binary_rule,
    evaluate,
    is_time_less,
    onboarded_names,
    policy_xml,
    resolve_onboarded,
)

# --------------------------------------------------------------------------------------------------
# Keys, certificates and wire builders
# --------------------------------------------------------------------------------------------------


def spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def certificate(key: Any, name: x509.Name | None = None) -> bytes:
    name = name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "officer1@example.com")])
    now = datetime.now(UTC)
    edwards = isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
    algorithm = None if edwards else hashes.SHA256()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(now).not_valid_after(now + timedelta(days=30))
        .sign(key, algorithm)
    )
    return cert.public_bytes(serialization.Encoding.DER)


EC_KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
K1_KEY = ec.generate_private_key(ec.SECP256K1())
RSA_KEY = rsa.generate_private_key(65537, 2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()
DSA_KEY = dsa.generate_private_key(1024)
ED448_KEY = ed448.Ed448PrivateKey.generate()
X25519_KEY = x25519.X25519PrivateKey.generate()
A, B, C = (spki(key.public_key()) for key in EC_KEYS)
CERT = certificate(EC_KEYS[0])


def pk(key: bytes, name: str | None = "Approver") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "public_key", "value": b64(key)}
    if name is not None:
        out["name"] = name
    return out


def group(*approvals: dict[str, Any], name: str = "Group1", quorum: int = 1) -> dict[str, Any]:
    return {"name": name, "quorum": quorum, "approvals": list(approvals)}


def token(
    *groups: dict[str, Any], name: str = "Token1", timelock: int = 0, timeout: int = 0
) -> dict[str, Any]:
    return {"name": name, "timelock": timelock, "timeout": timeout, "groups": list(groups)}


def rule(*tokens: dict[str, Any]) -> dict[str, Any]:
    return {"tokens": list(tokens)}


def wire(rule_use: dict[str, Any] | None = None, *, blocked: bool = False, **others: Any) -> dict[str, Any]:
    return {
        "ruleUse": rule_use, "ruleBlock": others.get("ruleBlock"), "ruleUnblock": others.get("ruleUnblock"),
        "ruleModify": others.get("ruleModify"), "keyStatus": {"blocked": blocked},
    }


def base_wire() -> dict[str, Any]:
    officers = group(pk(A, "FinanceOfficer1"), pk(B, "FinanceOfficer2"), quorum=1)
    return wire(rule(token(officers, timeout=3600)))


# --------------------------------------------------------------------------------------------------
# Wire JSON
# --------------------------------------------------------------------------------------------------


class TestWire:
    def test_reference_sample_round_trip(self) -> None:
        """Appendix A.1 shape: one token, one group, quorum 2 of 2 secp256k1 keys."""
        data = wire(rule(token(
            group(pk(spki(K1_KEY.public_key()), "FinanceOfficer1"), pk(B, "FinanceOfficer2"),
                  name="FinanceOfficers", quorum=2),
            timeout=3600,
        )))
        policy = Policy.from_wire(data)
        assert policy.rule_use is not None
        (tok,) = policy.rule_use.tokens
        assert (tok.name, tok.timelock, tok.timeout) == ("Token1", 0, 3600)
        (grp,) = tok.groups
        assert (grp.name, grp.quorum, len(grp.approvals)) == ("FinanceOfficers", 2, 2)
        expected = Approval(ApprovalType.PUBLIC_KEY, "FinanceOfficer1", spki(K1_KEY.public_key()))
        assert grp.approvals[0] == expected
        assert policy.rule_block is None and not policy.blocked
        assert policy.to_wire() == data

    @pytest.mark.parametrize(
        "key", [RSA_KEY, ED_KEY, EC_KEYS[0], K1_KEY], ids=["rsa", "ed25519", "p256", "k1"]
    )
    def test_supported_key_types(self, key: Any) -> None:
        policy = Policy.from_wire(wire(rule(token(group(pk(spki(key.public_key())))))))
        assert policy.rule_use is not None
        assert policy.rule_use.tokens[0].groups[0].approvals[0].identity == spki(key.public_key())

    def test_certificate_approval(self) -> None:
        data = wire(rule(token(group({"type": "certificate", "value": b64(CERT)}))))
        policy = Policy.from_wire(data)
        assert policy.rule_use is not None
        approval = policy.rule_use.tokens[0].groups[0].approvals[0]
        assert approval.type is ApprovalType.CERTIFICATE
        assert approval.name == "officer1@example.com"
        assert approval.value == CERT
        assert approval.identity == A  # the certificate's SPKI
        assert policy.to_wire() == data  # no name echoed (it would be a 604 on the way back)

    @pytest.mark.parametrize("name", [None, ""], ids=["null", "empty"])
    def test_certificate_with_empty_or_null_name(self, name: str | None) -> None:
        """An empty or null name is accepted and replaced by the certificate's subject, as with no name."""
        approval = {"type": "certificate", "name": name, "value": b64(CERT)}
        policy = Policy.from_wire(wire(rule(token(group(approval)))))
        assert policy.rule_use is not None
        (parsed,) = policy.rule_use.tokens[0].groups[0].approvals
        assert parsed.type is ApprovalType.CERTIFICATE
        assert parsed.name == "officer1@example.com"  # the subject CN the test certificate was made with
        assert parsed.value == CERT and parsed.identity == A  # the certificate's SPKI
        assert policy.to_wire() == wire(rule(token(group({"type": "certificate", "value": b64(CERT)}))))

    def test_public_key_name_is_optional(self) -> None:
        policy = Policy.from_wire(wire(rule(token(group(pk(A, None))))))
        assert policy.rule_use is not None
        assert policy.rule_use.tokens[0].groups[0].approvals[0].name is None
        assert policy.to_wire()["ruleUse"]["tokens"][0]["groups"][0]["approvals"][0] == {
            "type": "public_key", "name": None, "value": b64(A),
        }

    def test_empty_policy(self) -> None:
        policy = Policy.from_wire(wire())
        assert policy == Policy() and policy.is_empty
        assert policy.to_wire() == wire()

    def test_null_tokens_and_groups(self) -> None:
        groupless = {"name": "T", "timelock": 0, "timeout": 0}
        policy = Policy.from_wire(wire({"tokens": None}, ruleBlock=rule(groupless)))
        assert policy.rule_use == Rule(())
        assert policy.rule_block == Rule((Token("T", 0, 0, ()),))
        assert policy.is_empty is False

    def test_blocked_with_unblock_rule(self) -> None:
        policy = Policy.from_wire(wire(blocked=True, ruleUnblock=rule(token(group(pk(A))))))
        assert policy.blocked
        assert policy.to_wire()["keyStatus"] == {"blocked": True}

    def test_modify_policy_has_no_key_status(self) -> None:
        data = base_wire()
        del data["keyStatus"]
        policy = Policy.from_wire(data, key_status=False)
        assert policy.to_wire(key_status=False) == data
        assert "keyStatus" not in policy.to_wire(key_status=False)
        # a keyStatus inside a modify policy is ignored, even blocked without ruleUnblock
        assert Policy.from_wire({**data, "keyStatus": {"blocked": True}}, key_status=False) == policy

    def test_rule_for(self) -> None:
        policy = Policy(rule_use=Rule(), rule_unblock=Rule((Token("u", 0, 0),)))
        assert policy.rule_for(Operation.USE) == Rule()
        assert policy.rule_for(Operation.BLOCK) is None
        assert policy.rule_for(Operation.UNBLOCK) == policy.rule_unblock
        assert policy.rule_for(Operation.MODIFY) is None

    def test_field_prefix(self) -> None:
        data = base_wire()
        data["ruleUse"]["tokens"][0]["timelock"] = 90
        with pytest.raises(errors.ValidationFailed) as info:
            Policy.from_wire(data, field="modifyRequest.policy", key_status=False)
        assert info.value.message == (
            "'modifyRequest.policy.ruleUse.tokens[0].timelock' seconds must represent full minutes"
        )


# --------------------------------------------------------------------------------------------------
# Validation errors: every one with its TSB code and the field it names
# --------------------------------------------------------------------------------------------------

T0 = "policy.ruleUse.tokens[0]"
G0 = f"{T0}.groups[0]"
A0 = f"{G0}.approvals[0]"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets a dotted path (``ruleUse.tokens.0.timelock``) of the base policy."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()
_TOKEN = "ruleUse.tokens.0"
_GROUP = f"{_TOKEN}.groups.0"
_APPROVAL = f"{_GROUP}.approvals.0"


def _cert_approval(der: bytes, name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "certificate", "value": b64(der)}
    if name is not None:
        out["name"] = name
    return out


def _too_large(data: dict[str, Any]) -> None:
    rsa_key = spki(RSA_KEY.public_key())
    data["ruleUse"]["tokens"] = [token(group(pk(rsa_key)), name=f"T{i}") for i in range(200)]


VALIDATION_CASES: list[tuple[str, Callable[[dict[str, Any]], None], int, str]] = [
    ("timelock-seconds", _set(f"{_TOKEN}.timelock", 30), 600,
     f"'{T0}.timelock' seconds must represent full minutes"),
    ("timeout-seconds", _set(f"{_TOKEN}.timeout", 61), 600,
     f"'{T0}.timeout' seconds must represent full minutes"),
    ("timelock-negative", _set(f"{_TOKEN}.timelock", -60), 600, f"'{T0}.timelock' must not be negative"),
    ("timeout-negative", _set(f"{_TOKEN}.timeout", -120), 600, f"'{T0}.timeout' must not be negative"),
    ("timelock-null", _set(f"{_TOKEN}.timelock", None), 600, f"'{T0}.timelock' must not be null"),
    ("timeout-missing", _set(f"{_TOKEN}.timeout", _DELETE), 600, f"'{T0}.timeout' must not be null"),
    ("timelock-string", _set(f"{_TOKEN}.timelock", "60"), 600, f"'{T0}.timelock' must be an integer"),
    ("timelock-bool", _set(f"{_TOKEN}.timelock", True), 600, f"'{T0}.timelock' must be an integer"),
    ("timelock-float", _set(f"{_TOKEN}.timelock", 60.5), 600, f"'{T0}.timelock' must be an integer"),
    ("timelock-huge", _set(f"{_TOKEN}.timelock", MAX_SECONDS + 60), 600,
     f"'{T0}.timelock' must not exceed {MAX_SECONDS} seconds"),
    ("quorum-zero", _set(f"{_GROUP}.quorum", 0), 600,
     f"'{G0}.quorum' must be between 1 and the number of approvals (2)"),
    ("quorum-too-high", _set(f"{_GROUP}.quorum", 3), 600,
     f"'{G0}.quorum' must be between 1 and the number of approvals (2)"),
    ("quorum-null", _set(f"{_GROUP}.quorum", None), 600, f"'{G0}.quorum' must not be null"),
    ("quorum-string", _set(f"{_GROUP}.quorum", "1"), 600, f"'{G0}.quorum' must be an integer"),
    ("approvals-empty", _set(f"{_GROUP}.approvals", []), 600, f"'{G0}.approvals' must not be empty"),
    ("approvals-null", _set(f"{_GROUP}.approvals", None), 600, f"'{G0}.approvals' must not be empty"),
    ("approvals-object", _set(f"{_GROUP}.approvals", {}), 600, f"'{G0}.approvals' must be an array"),
    ("approval-not-object", _set(_APPROVAL, "MFkw"), 600, f"'{A0}' must be a JSON object"),
    ("type-unknown", _set(f"{_APPROVAL}.type", "bls_key"), 600,
     f"Value 'bls_key' is not valid for field '{A0}.type'"),
    ("type-null", _set(f"{_APPROVAL}.type", None), 600, f"'{A0}.type' must not be null"),
    ("name-number", _set(f"{_APPROVAL}.name", 5), 600, f"'{A0}.name' must be a string"),
    ("value-null", _set(f"{_APPROVAL}.value", None), 600, f"'{A0}.value' must not be null"),
    ("value-not-base64", _set(f"{_APPROVAL}.value", "not base64!"), 600, f"'{A0}.value' must be base64"),
    ("value-empty", _set(f"{_APPROVAL}.value", ""), 600, f"'{A0}.value' must not be empty"),
    ("value-not-spki", _set(f"{_APPROVAL}.value", b64(b"\x30\x03\x02\x01\x01")), 407,
     f"'{A0}.value' is not a DER SubjectPublicKeyInfo"),
    ("value-spki-trailing", _set(f"{_APPROVAL}.value", b64(A + b"\x00")), 407,
     f"'{A0}.value' is not a DER SubjectPublicKeyInfo"),
    ("value-certificate-as-key", _set(f"{_APPROVAL}.value", b64(CERT)), 407,
     f"'{A0}.value' is not a DER SubjectPublicKeyInfo"),
    ("value-dsa", _set(f"{_APPROVAL}.value", b64(spki(DSA_KEY.public_key()))), 601,
     f"'{A0}.value': approver key type DSA is not supported (RSA, EC, Ed25519)"),
    ("value-ed448", _set(f"{_APPROVAL}.value", b64(spki(ED448_KEY.public_key()))), 601,
     f"'{A0}.value': approver key type Ed448 is not supported (RSA, EC, Ed25519)"),
    ("value-x25519", _set(f"{_APPROVAL}.value", b64(spki(X25519_KEY.public_key()))), 601,
     f"'{A0}.value': approver key type X25519 is not supported (RSA, EC, Ed25519)"),
    ("value-unknown-algorithm",
     _set(f"{_APPROVAL}.value", b64(bytes.fromhex("3011300906072a030405060708030400010203"))), 601,
     f"'{A0}.value': approver key (algorithm 1.2.3.4.5.6.7.8) is not supported (RSA, EC, Ed25519)"),
    ("certificate-named", _set(_APPROVAL, _cert_approval(CERT, "Alice")), 604,
     f"'{A0}.name' must not be set for a certificate approval: the name is the certificate's CN"),
    ("certificate-without-cn",
     _set(_APPROVAL, _cert_approval(certificate(
         EC_KEYS[1], x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ACME")])))), 604,
     f"'{A0}.value': the certificate has no subject CN to name the approver"),
    ("certificate-garbage", _set(_APPROVAL, _cert_approval(A)), 409,
     f"'{A0}.value' is not a DER X.509 certificate"),
    ("certificate-dsa", _set(_APPROVAL, _cert_approval(certificate(DSA_KEY))), 601,
     f"'{A0}.value': approver key type DSA is not supported (RSA, EC, Ed25519)"),
    ("onboarded-without-name",
     _set(_APPROVAL, {"type": "onboarded_approver_certificate", "value": b64(A)}), 604,
     f"'{A0}.name' must name the onboarded approver"),
    ("onboarded-twice", _set(f"{_GROUP}.approvals",
                             [{"type": "onboarded_approver_certificate", "name": "officer1@securosys.com"}] * 2), 600,
     f"'{G0}.approvals[1]' repeats an approver already listed in the group"),
    ("duplicate-approver", _set(f"{_GROUP}.approvals.1", pk(A, "again")), 600,
     f"'{G0}.approvals[1]' repeats an approver already listed in the group"),
    ("duplicate-via-certificate", _set(f"{_GROUP}.approvals.1", _cert_approval(CERT)), 600,
     f"'{G0}.approvals[1]' repeats an approver already listed in the group"),
    ("token-name-null", _set(f"{_TOKEN}.name", None), 600, f"'{T0}.name' must not be null"),
    ("group-name-number", _set(f"{_GROUP}.name", 5), 600, f"'{G0}.name' must be a string"),
    ("groups-string", _set(f"{_TOKEN}.groups", "g"), 600, f"'{T0}.groups' must be an array"),
    ("group-not-object", _set(f"{_TOKEN}.groups", [1]), 600, f"'{G0}' must be a JSON object"),
    ("tokens-object", _set("ruleUse.tokens", {}), 600, "'policy.ruleUse.tokens' must be an array"),
    ("token-not-object", _set("ruleUse.tokens", [None]), 600, f"'{T0}' must be a JSON object"),
    ("rule-array", _set("ruleModify", []), 600, "'policy.ruleModify' must be a JSON object"),
    ("other-rule-field", _set("ruleBlock", rule(token(timelock=1))), 600,
     "'policy.ruleBlock.tokens[0].timelock' seconds must represent full minutes"),
    ("key-status-missing", _set("keyStatus", _DELETE), 600, "'policy.keyStatus' must not be null"),
    ("key-status-array", _set("keyStatus", []), 600, "'policy.keyStatus' must be a JSON object"),
    ("blocked-missing", _set("keyStatus", {}), 600, "'policy.keyStatus.blocked' must not be null"),
    ("blocked-string", _set("keyStatus", {"blocked": "false"}), 600,
     "'policy.keyStatus.blocked' must be a boolean"),
    ("blocked-without-unblock", _set("keyStatus", {"blocked": True}), 600,
     "'policy.ruleUnblock' must not be empty when 'policy.keyStatus.blocked' is true"),
    ("blocked-with-empty-unblock",
     lambda d: d.update(keyStatus={"blocked": True}, ruleUnblock={"tokens": []}), 600,
     "'policy.ruleUnblock' must not be empty when 'policy.keyStatus.blocked' is true"),
    ("too-large", _too_large, 600, "'policy' is too large: its binary form exceeds 60000 bytes"),
]


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [case[1:] for case in VALIDATION_CASES],
    ids=[case[0] for case in VALIDATION_CASES],
)
def test_validation_error(mutate: Callable[[dict[str, Any]], None], code: int, message: str) -> None:
    data = base_wire()
    data["ruleUse"]["tokens"][0]["groups"][0]["quorum"] = 1
    mutate(data)
    with pytest.raises(errors.TsbError) as info:
        Policy.from_wire(data)
    assert (info.value.code, info.value.message) == (code, message)
    assert info.value.status == 400


def test_policy_must_be_an_object() -> None:
    with pytest.raises(errors.ValidationFailed) as info:
        Policy.from_wire(["ruleUse"])
    assert info.value.message == "'policy' must be a JSON object"


def test_base_wire_is_valid() -> None:
    data = base_wire()
    assert Policy.from_wire(copy.deepcopy(data)).to_wire() == data


# --------------------------------------------------------------------------------------------------
# approvers / is_time_less
# --------------------------------------------------------------------------------------------------


def _approval(key: bytes, name: str) -> Approval:
    return Approval(ApprovalType.PUBLIC_KEY, name, key)


APP_A, APP_B, APP_C = _approval(A, "A"), _approval(B, "B"), _approval(C, "C")


def _token(*groups: Group, name: str = "T", timelock: int = 0, timeout: int = 0) -> Token:
    return Token(name, timelock, timeout, groups)


def _group(quorum: int, *approvals: Approval, name: str = "G") -> Group:
    return Group(name, quorum, approvals)


def test_approvers_distinct_in_policy_order() -> None:
    cert = Approval(ApprovalType.CERTIFICATE, "officer1@example.com", CERT)  # same key as A
    rule_ = Rule((
        _token(_group(1, APP_B, APP_A), _group(1, APP_C)),
        _token(_group(2, cert, APP_B, APP_C)),
    ))
    assert approvers(rule_) == [APP_B, APP_A, APP_C]
    assert approvers(None) == [] and approvers(Rule()) == []


def test_is_time_less() -> None:
    assert is_time_less(None) and is_time_less(Rule())
    assert is_time_less(Rule((_token(_group(1, APP_A)), _token(_group(1, APP_B)))))
    assert not is_time_less(Rule((_token(_group(1, APP_A)), _token(_group(1, APP_B), timeout=60))))
    assert not is_time_less(Rule((_token(_group(1, APP_A), timelock=60),)))


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------

CREATED = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return CREATED + timedelta(seconds=seconds)


def run(rule_: Rule | None, approved: set[bytes], rejected: set[bytes] | None = None, now: int = 0) -> Any:
    return evaluate(rule_, approved, rejected or set(), CREATED, at(now))


class TestEvaluate:
    def test_one_of_one(self) -> None:
        rule_ = Rule((_token(_group(1, APP_A)),))
        assert run(rule_, set()).status is EvaluationStatus.PENDING
        assert run(rule_, {B}).status is EvaluationStatus.PENDING  # not an approver of this rule
        result = run(rule_, {A})
        assert result.status is EvaluationStatus.FULFILLED and result.token == rule_.tokens[0]

    def test_two_of_three(self) -> None:
        rule_ = Rule((_token(_group(2, APP_A, APP_B, APP_C)),))
        assert run(rule_, {A}).status is EvaluationStatus.PENDING
        assert run(rule_, {A, C}).status is EvaluationStatus.FULFILLED
        assert run(rule_, {A, B, C}).status is EvaluationStatus.FULFILLED

    def test_two_groups_and(self) -> None:
        rule_ = Rule((_token(_group(1, APP_A), _group(1, APP_B, APP_C)),))
        assert run(rule_, {A}).status is EvaluationStatus.PENDING
        assert run(rule_, {B, C}).status is EvaluationStatus.PENDING
        assert run(rule_, {A, C}).status is EvaluationStatus.FULFILLED

    def test_two_tokens_or(self) -> None:
        first, second = _token(_group(2, APP_A, APP_B), name="both"), _token(_group(1, APP_C), name="c")
        rule_ = Rule((first, second))
        assert run(rule_, {A}).status is EvaluationStatus.PENDING
        assert run(rule_, {C}).token == second
        assert run(rule_, {A, B}).token == first
        assert run(rule_, {A, B, C}).token == first  # first fulfilled token in policy order

    def test_timelock_waits_then_fulfils(self) -> None:
        tok = _token(_group(1, APP_A), timelock=600, timeout=3600)
        rule_ = Rule((tok,))
        waiting = run(rule_, {A}, now=60)
        assert waiting.status is EvaluationStatus.APPROVED_WAITING_TIMELOCK
        assert (waiting.token, waiting.ready_at, waiting.expires_at) == (tok, at(600), at(3600))
        assert run(rule_, {A}, now=599).status is EvaluationStatus.APPROVED_WAITING_TIMELOCK
        assert run(rule_, {A}, now=600).status is EvaluationStatus.FULFILLED
        assert run(rule_, set(), now=600).status is EvaluationStatus.PENDING

    def test_earliest_timelock_wins(self) -> None:
        slow = _token(_group(1, APP_A), name="slow", timelock=900)
        fast = _token(_group(1, APP_A), name="fast", timelock=300)
        result = run(Rule((slow, fast)), {A}, now=0)
        assert result.status is EvaluationStatus.APPROVED_WAITING_TIMELOCK
        assert (result.token, result.ready_at) == (fast, at(300))
        assert run(Rule((slow, fast)), {A}, now=300).token == fast

    def test_timeout_expires(self) -> None:
        rule_ = Rule((_token(_group(1, APP_A), timeout=300),))
        pending = run(rule_, set(), now=300)  # boundary: not yet expired
        assert (pending.status, pending.expires_at) == (EvaluationStatus.PENDING, at(300))
        assert run(rule_, set(), now=301).status is EvaluationStatus.EXPIRED
        # approvals that complete the quorum after the timeout are too late
        assert run(rule_, {A}, now=301).status is EvaluationStatus.EXPIRED

    def test_timelock_beyond_timeout_expires_while_waiting(self) -> None:
        rule_ = Rule((_token(_group(1, APP_A), timelock=600, timeout=300),))
        assert run(rule_, {A}, now=200).status is EvaluationStatus.APPROVED_WAITING_TIMELOCK
        assert run(rule_, {A}, now=301).status is EvaluationStatus.EXPIRED

    def test_expiry_only_when_every_token_expired(self) -> None:
        rule_ = Rule((_token(_group(1, APP_A), timeout=300), _token(_group(1, APP_B), timeout=0)))
        result = run(rule_, set(), now=10_000)
        assert (result.status, result.expires_at) == (EvaluationStatus.PENDING, None)
        assert run(rule_, {B}, now=10_000).status is EvaluationStatus.FULFILLED
        both_timed = Rule((_token(_group(1, APP_A), timeout=300), _token(_group(1, APP_B), timeout=600)))
        assert run(both_timed, set(), now=0).expires_at == at(600)
        assert run(both_timed, set(), now=400).expires_at == at(600)
        assert run(both_timed, set(), now=601).status is EvaluationStatus.EXPIRED

    def test_rejection_makes_rule_unfulfillable(self) -> None:
        rule_ = Rule((_token(_group(2, APP_A, APP_B, APP_C)),))
        assert run(rule_, {A}, {B}).status is EvaluationStatus.PENDING  # C can still complete the quorum
        assert run(rule_, {A}, {B, C}).status is EvaluationStatus.REJECTED
        assert run(Rule((_token(_group(1, APP_A)),)), set(), {A}).status is EvaluationStatus.REJECTED

    def test_rejection_in_one_token_leaves_the_other(self) -> None:
        rule_ = Rule((_token(_group(1, APP_A)), _token(_group(1, APP_B), timeout=300)))
        assert run(rule_, set(), {A}, now=100).status is EvaluationStatus.PENDING
        assert run(rule_, set(), {A}, now=301).status is EvaluationStatus.REJECTED  # B's token timed out
        assert run(rule_, set(), {A, B}, now=0).status is EvaluationStatus.REJECTED

    def test_rejected_approval_does_not_count(self) -> None:
        rule_ = Rule((_token(_group(1, APP_A, APP_B)),))
        assert run(rule_, {A}, {A}).status is EvaluationStatus.PENDING
        assert run(rule_, {A}, {A, B}).status is EvaluationStatus.REJECTED

    def test_fulfilled_beats_rejection_elsewhere(self) -> None:
        rule_ = Rule((_token(_group(1, APP_A)), _token(_group(1, APP_B))))
        assert run(rule_, {B}, {A}).status is EvaluationStatus.FULFILLED

    def test_certificate_approver_identity(self) -> None:
        cert = Approval(ApprovalType.CERTIFICATE, "officer1@example.com", CERT)
        assert run(Rule((_token(_group(1, cert)),)), {A}).status is EvaluationStatus.FULFILLED

    def test_empty_rules_are_fulfilled(self) -> None:
        assert run(None, set()).status is EvaluationStatus.FULFILLED
        assert run(Rule(), set(), {A}).status is EvaluationStatus.FULFILLED
        assert run(Rule((_token(),)), set()).status is EvaluationStatus.FULFILLED  # token without groups
        assert run(Rule((_token(timelock=60),)), set()).status is EvaluationStatus.APPROVED_WAITING_TIMELOCK


# --------------------------------------------------------------------------------------------------
# Binary policy (§6.6)
# --------------------------------------------------------------------------------------------------


def tlv(tag: int, value: bytes) -> bytes:
    """Independent re-statement of the TLV rule for expected bytes."""
    return struct.pack("<HH", tag, len(value)) + value + bytes(-len(value) % 4)


def cont(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack("<I", len(body)) + body


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


SAMPLE = Policy(
    rule_use=Rule((Token("Token1", 0, 600, (Group("Group1", 1, (_approval(A, "ApproverKey1"),)),)),))
)


class TestBinaryPolicy:
    def test_sample_structure_byte_exact(self) -> None:
        """§6.6 sample: 1 token / 1 group / 1 approver / quorum 1, timeout 600 s = 10 minutes."""
        rule_use = cont(
            tlv(0x0059, u32(1)),
            tlv(0x1002, b"Token1"), tlv(0x0055, u32(0)), tlv(0x0055, u32(10)), tlv(0x005A, u32(1)),
            tlv(0x1002, b"Group1"), tlv(0x005B, u32(1)), tlv(0x0003, u32(1)),
            tlv(0x1002, b"ApproverKey1"), tlv(0x1052, A),
        )
        empty_rule = cont(tlv(0x0059, u32(0)))
        expected = cont(
            tlv(0x104E, rule_use), tlv(0x104F, empty_rule), tlv(0x1050, empty_rule), tlv(0x1051, empty_rule)
        )
        assert binary_policy(SAMPLE) == expected
        assert empty_rule.hex() == "08000000" + "59000400" + "00000000"

    def test_tags_and_order(self) -> None:
        outer = decode_container(binary_policy(SAMPLE))
        assert [item.tag for item in outer] == [
            Tag.RULE_USE, Tag.RULE_BLOCK, Tag.RULE_UNBLOCK, Tag.RULE_MODIFY,
        ]
        inner = decode_container(outer[0].value)
        assert [item.tag for item in inner] == [
            Tag.TOKEN_COUNT, Tag.LABEL_UTF8_STRING, Tag.MINUTES, Tag.MINUTES, Tag.GROUP_COUNT,
            Tag.LABEL_UTF8_STRING, Tag.QUORUM, Tag.APPROVAL_COUNT,
            Tag.LABEL_UTF8_STRING, Tag.APPROVER_PUBLIC_KEY,
        ]
        assert inner[-1] == Tlv(Tag.APPROVER_PUBLIC_KEY, A)

    def test_counts_quorum_and_minutes(self) -> None:
        """GAP reading: 0x0059 = #tokens, 0x005A = #groups, 0x005B = quorum, 0x0003 = #approvals."""
        rule_ = Rule((
            _token(_group(2, APP_A, APP_B, APP_C, name="G1"), _group(1, APP_A, name="G2"), name="T1",
                   timelock=180, timeout=180),
            _token(_group(1, APP_B), name="T2", timelock=0, timeout=7200),
        ))
        reader = TlvReader(decode_container(binary_rule(rule_)), "rule")
        assert reader.take_u32(Tag.TOKEN_COUNT) == 2
        assert reader.take_utf8(Tag.LABEL_UTF8_STRING) == "T1"
        assert (reader.take_u32(Tag.MINUTES), reader.take_u32(Tag.MINUTES)) == (3, 3)
        assert reader.take_u32(Tag.GROUP_COUNT) == 2
        assert reader.take_utf8(Tag.LABEL_UTF8_STRING) == "G1"
        assert (reader.take_u32(Tag.QUORUM), reader.take_u32(Tag.APPROVAL_COUNT)) == (2, 3)
        for key, name in ((A, "A"), (B, "B"), (C, "C")):
            assert reader.take_utf8(Tag.LABEL_UTF8_STRING) == name
            assert reader.take(Tag.APPROVER_PUBLIC_KEY).value == key
        assert reader.take_utf8(Tag.LABEL_UTF8_STRING) == "G2"
        assert (reader.take_u32(Tag.QUORUM), reader.take_u32(Tag.APPROVAL_COUNT)) == (1, 1)
        assert reader.take_utf8(Tag.LABEL_UTF8_STRING) == "A"
        assert reader.take(Tag.APPROVER_PUBLIC_KEY).value == A
        assert reader.take_utf8(Tag.LABEL_UTF8_STRING) == "T2"
        assert (reader.take_u32(Tag.MINUTES), reader.take_u32(Tag.MINUTES)) == (0, 120)
        assert reader.take_u32(Tag.GROUP_COUNT) == 1
        reader.take(Tag.LABEL_UTF8_STRING), reader.take(Tag.QUORUM), reader.take(Tag.APPROVAL_COUNT)
        reader.take(Tag.LABEL_UTF8_STRING), reader.take(Tag.APPROVER_PUBLIC_KEY)
        reader.end()

    def test_certificate_and_nameless_approvals(self) -> None:
        cert = Approval(ApprovalType.CERTIFICATE, "officer1@example.com", CERT)
        nameless = Approval(ApprovalType.PUBLIC_KEY, None, B)
        items = decode_container(binary_rule(Rule((_token(_group(1, cert, nameless)),))))
        assert items[-4:] == [
            Tlv(Tag.LABEL_UTF8_STRING, b"officer1@example.com"), Tlv(Tag.APPROVER_PUBLIC_KEY, A),
            Tlv(Tag.LABEL_UTF8_STRING, b""), Tlv(Tag.APPROVER_PUBLIC_KEY, B),
        ]

    def test_from_wire_and_modify_token(self) -> None:
        policy = Policy.from_wire(wire(rule(token(group(pk(A, "ApproverKey1")), timeout=600))))
        assert binary_policy(policy) == binary_policy(SAMPLE)
        payload = binary_policy(policy)
        challenge = ApprovalToBeSigned.time_less(Operation.MODIFY, payload)
        assert ApprovalToBeSigned.decode(challenge.encode()).payload == payload
        assert decode_container(challenge.encode())[-1].tag == Tag.EKA_MODIFY_PAYLOAD

    def test_unvalidated_seconds_rejected(self) -> None:
        with pytest.raises(ValueError):
            binary_rule(Rule((_token(timelock=90),)))


# --------------------------------------------------------------------------------------------------
# Attestation XML fragment (§4.6)
# --------------------------------------------------------------------------------------------------


class TestPolicyXml:
    def test_sample(self) -> None:
        assert policy_xml(SAMPLE) == [
            "\t<policy>",
            "\t\t<key_status>",
            "\t\t\t<blocked>false</blocked>",
            "\t\t</key_status>",
            "\t\t<rule_use>",
            '\t\t\t<token name="Token1">',
            "\t\t\t\t<timelock>0</timelock>",
            "\t\t\t\t<timeout>600</timeout>",
            '\t\t\t\t<group name="Group1">',
            "\t\t\t\t\t<quorum>1</quorum>",
            f'\t\t\t\t\t<approval type="public_key" name="ApproverKey1">{b64(A)}</approval>',
            "\t\t\t\t</group>",
            "\t\t\t</token>",
            "\t\t</rule_use>",
            "\t\t<rule_block/>",
            "\t\t<rule_unblock/>",
            "\t\t<rule_modify/>",
            "\t</policy>",
        ]

    def test_escaping_blocked_certificate_and_depth(self) -> None:
        cert = Approval(ApprovalType.CERTIFICATE, "O'Neil & <Co>", CERT)
        policy = Policy(
            rule_unblock=Rule((
                _token(_group(1, cert, Approval(ApprovalType.PUBLIC_KEY, None, B)), name='a"b'),
            )),
            blocked=True,
        )
        lines = policy_xml(policy, depth=0)
        assert lines[0] == "<policy>" and lines[-1] == "</policy>"
        assert "\t\t<blocked>true</blocked>" in lines
        assert '\t\t<token name="a&quot;b">' in lines
        escaped = "O&apos;Neil &amp; &lt;Co&gt;"
        assert f'\t\t\t\t<approval type="certificate" name="{escaped}">{b64(CERT)}</approval>' in lines
        assert f'\t\t\t\t<approval type="public_key">{b64(B)}</approval>' in lines
        assert lines.index("\t<rule_use/>") < lines.index("\t<rule_unblock>")


# --------------------------------------------------------------------------------------------------
# Onboarded approvers (docs/approvers.md)
# --------------------------------------------------------------------------------------------------


def test_onboarded_approvers_resolve_by_name() -> None:
    now = datetime.now(UTC)
    onboarded = {"type": "onboarded_approver_certificate", "name": "officer1@example.com"}
    wire = {"ruleUse": rule(token(group(onboarded, pk(B), quorum=2))), "ruleBlock": None, "ruleUnblock": None,
            "ruleModify": None, "keyStatus": {"blocked": False}}
    parsed = Policy.from_wire(wire)
    assert onboarded_names(parsed) == ("officer1@example.com",)
    assert parsed.to_wire()["ruleUse"]["tokens"][0]["groups"][0]["approvals"][0] == onboarded  # stored by name
    unresolved = [a.identity for a in approvers(parsed.rule_use)]
    assert unresolved[0].startswith(UNRESOLVED_APPROVER) and unresolved[1] == B

    resolved = resolve_onboarded(parsed, {"officer1@example.com": CERT}.get)
    assert [a.identity for a in approvers(resolved.rule_use)] == [A, B]  # CERT holds key A
    assert resolved.to_wire() == parsed.to_wire()
    assert b64(CERT) in "".join(policy_xml(resolved))
    assert evaluate(resolved.rule_use, frozenset({A, B}), frozenset(), now, now).status is EvaluationStatus.FULFILLED
    assert evaluate(parsed.rule_use, frozenset({A, B}), frozenset(), now, now).status is EvaluationStatus.PENDING

    gone = resolve_onboarded(parsed, lambda _name: None)  # a deleted approver stands for nobody
    assert [a.identity for a in approvers(gone.rule_use)] == unresolved
    with pytest.raises(errors.TsbError) as refused:
        resolve_onboarded(parsed, lambda _name: None, field="policy")
    assert refused.value.code == 654 and "officer1@example.com" in refused.value.message
    plain = Policy.from_wire({**wire, "ruleUse": rule(token(group(pk(B))))})
    assert resolve_onboarded(plain, lambda _name: pytest.fail("no lookup for a policy without onboarded approvers")) \
        is plain
