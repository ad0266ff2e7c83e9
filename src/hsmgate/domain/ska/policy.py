"""Smart Key Attributes (SKA) policies: model, wire JSON, validation, binary form, XML and evaluation.

* Wire JSON (reference §6.1): ``{"ruleUse", "ruleBlock", "ruleUnblock", "ruleModify", "keyStatus"}``;
  a full ``PolicyDto`` carries ``keyStatus``, a ``ModifyPolicyDto`` does not. :meth:`Policy.from_wire`
  validates and raises the TSB errors of :mod:`hsmgate.domain.errors`, naming the offending field.
* Binary policy (§6.6): :func:`binary_policy` — the ``EKA_MODIFY_PAYLOAD`` the HSM enforces.
* Attestation XML (§4.6): :func:`policy_xml` — the ``<policy>`` element of the key's attribute XML.
* Evaluation: :func:`evaluate` — pure and clock-injected; tokens are OR-ed, groups AND-ed, each
  group needs ``quorum`` distinct approvers.

An approver's *identity* is the DER SubjectPublicKeyInfo of its key, for a ``certificate`` approval the
SPKI embedded in the certificate (bytes as embedded). Approvals, rejections, ``approvedBy`` … are all
expressed as these bytes.

All times (``timelock``, ``timeout``) are seconds on the wire and in this model, whole minutes only;
the binary policy carries them in minutes.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from hsmgate.domain import errors
from hsmgate.domain.ska.approval_token import (
    U32_MAX,
    Operation,
    Tag,
    TokenFormatError,
    certificate_public_key,
    encode_container,
    spki_algorithm,
    u32,
)

MAX_BINARY_POLICY_SIZE = 60_000
"""Largest binary policy we accept, in bytes. The binary policy travels inside u16-length TLVs
(``EKA_MODIFY_PAYLOAD``, and inside the ``EKA_TIMESTAMP`` blob), so it must stay below 64 KiB with
room for the timestamp's other TLVs."""

MAX_SECONDS = U32_MAX * 60
"""Largest timelock/timeout in seconds: the binary policy holds minutes in a u32."""


class ApprovalType(enum.StrEnum):
    """Approval ``type`` values of the wire JSON."""

    PUBLIC_KEY = "public_key"  # value = b64 DER SubjectPublicKeyInfo; name optional
    CERTIFICATE = "certificate"  # value = b64 DER X.509 certificate; name = the certificate's CN
    #: name only on the wire; ``value`` = the approver's DER certificate once resolved
    #: (:func:`resolve_onboarded`), empty while unresolved
    ONBOARDED_APPROVER_CERTIFICATE = "onboarded_approver_certificate"


@dataclass(frozen=True, slots=True)
class Approval:
    """One approver entry of a group. ``value`` is DER: an SPKI (public_key) or a certificate (a
    certificate, a resolved onboarded approver); empty for an onboarded approver not (or no longer)
    resolved."""

    type: ApprovalType
    name: str | None
    value: bytes

    @property
    def identity(self) -> bytes:
        """The approver's DER SPKI, which approvals and rejections are matched against. An
        unresolved onboarded approver has an identity no key has (it is no DER): nobody's
        approval counts for it."""
        if not self.value:
            return UNRESOLVED_APPROVER + (self.name or "").encode("utf-8")
        return _identity(self.type, self.value)


@dataclass(frozen=True, slots=True)
class Group:
    """Approvers of which at least ``quorum`` distinct ones must approve."""

    name: str
    quorum: int
    approvals: tuple[Approval, ...]


@dataclass(frozen=True, slots=True)
class Token:
    """One way to satisfy a rule: every group reaches its quorum.

    ``timelock``: seconds after request creation before the operation may run (0 = at once).
    ``timeout``: seconds after request creation after which approvals no longer count (0 = never).
    """

    name: str
    timelock: int
    timeout: int
    groups: tuple[Group, ...] = ()

    @property
    def is_time_less(self) -> bool:
        """True when the token needs no HSM timestamp (no timelock, no timeout)."""
        return self.timelock == 0 and self.timeout == 0


@dataclass(frozen=True, slots=True)
class Rule:
    """Tokens of which any one suffices. No tokens = no approvals needed."""

    tokens: tuple[Token, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """The SKA policy of a key. A None rule means "no approvals needed" for that operation.

    ``blocked`` is the ``keyStatus.blocked`` of a full policy; a modify policy has no key status
    and leaves it False.
    """

    rule_use: Rule | None = None
    rule_block: Rule | None = None
    rule_unblock: Rule | None = None
    rule_modify: Rule | None = None
    blocked: bool = False

    def rule_for(self, operation: Operation) -> Rule | None:
        """The rule that governs ``operation``."""
        return {
            Operation.USE: self.rule_use,
            Operation.BLOCK: self.rule_block,
            Operation.UNBLOCK: self.rule_unblock,
            Operation.MODIFY: self.rule_modify,
        }[operation]

    @property
    def is_empty(self) -> bool:
        """True when no operation needs approvals (the "empty policy" of an SKA key)."""
        return all(rule is None or not rule.tokens for rule in self._rules())

    def _rules(self) -> tuple[Rule | None, Rule | None, Rule | None, Rule | None]:
        return (self.rule_use, self.rule_block, self.rule_unblock, self.rule_modify)

    @classmethod
    def from_wire(cls, data: Any, *, field: str = "policy", key_status: bool = True,
                  stored: bool = False) -> Policy:
        """Validate and convert the camelCase policy JSON (already parsed) into a Policy.

        ``field`` is the JSON path of the policy, used in error messages (e.g.
        ``modifyRequest.policy``). ``key_status`` selects a full ``PolicyDto`` (keyStatus required)
        over a ``ModifyPolicyDto`` (keyStatus ignored). Raises TsbError subclasses: 600 for shape and
        value errors, 407/409 for unparseable keys/certificates, 601 for unsupported approver key
        types, 604 for named certificate approvals, nameless certificate or onboarded approvals.

        A key *created* blocked must name who may unblock it: a non-empty ``ruleUnblock`` (600
        otherwise, reference §6.1). ``stored``: the policy of an existing key, read back — that rule
        belongs to the creation request only. A key blocked later whose ``ruleUnblock`` is empty or
        null is unblocked without approvals (an empty rule needs none), so it is never stuck.
        """
        obj = _object(data, field)
        rules = [_rule(obj.get(key), f"{field}.{key}") for key, _ in _RULE_NAMES]
        blocked = False
        if key_status:
            status = _object(_required(obj, "keyStatus", f"{field}.keyStatus"), f"{field}.keyStatus")
            blocked_field = f"{field}.keyStatus.blocked"
            blocked = _bool(_required(status, "blocked", blocked_field), blocked_field)
            unblock = rules[2]
            if blocked and not stored and (unblock is None or not unblock.tokens):
                raise errors.ValidationFailed(
                    f"'{field}.ruleUnblock' must not be empty when '{field}.keyStatus.blocked' is true"
                )
        rule_use, rule_block, rule_unblock, rule_modify = rules
        policy = cls(rule_use, rule_block, rule_unblock, rule_modify, blocked)
        try:
            size = len(binary_policy(policy))
        except TokenFormatError:
            size = MAX_BINARY_POLICY_SIZE + 1
        if size > MAX_BINARY_POLICY_SIZE:
            raise errors.ValidationFailed(
                f"'{field}' is too large: its binary form exceeds {MAX_BINARY_POLICY_SIZE} bytes"
            )
        return policy

    def to_wire(self, *, key_status: bool = True) -> dict[str, Any]:
        """The camelCase JSON of the policy; ``keyStatus`` only when ``key_status`` (full policy)."""
        out: dict[str, Any] = {
            key: _rule_wire(rule) for (key, _), rule in zip(_RULE_NAMES, self._rules(), strict=True)
        }
        if key_status:
            out["keyStatus"] = {"blocked": self.blocked}
        return out


_RULE_NAMES = (
    ("ruleUse", "rule_use"),
    ("ruleBlock", "rule_block"),
    ("ruleUnblock", "rule_unblock"),
    ("ruleModify", "rule_modify"),
)
_RULE_TAGS = (Tag.RULE_USE, Tag.RULE_BLOCK, Tag.RULE_UNBLOCK, Tag.RULE_MODIFY)


# --------------------------------------------------------------------------------------------------
# Approver identity
# --------------------------------------------------------------------------------------------------


#: Prefix of the identity of an onboarded approver that does not resolve (deleted, or not in this
#: partition): not DER, so no approver key ever matches it.
UNRESOLVED_APPROVER = b"unresolved-onboarded-approver:"


@functools.lru_cache(maxsize=4096)
def _identity(kind: ApprovalType, value: bytes) -> bytes:
    if kind is ApprovalType.PUBLIC_KEY:
        return value
    return certificate_public_key(value)  # a certificate, or an onboarded approver's certificate


@functools.lru_cache(maxsize=1024)
def onboarded_names(policy: Policy) -> tuple[str, ...]:
    """The names of the onboarded approvers a policy names, in policy order, each once."""
    names: dict[str, None] = {}
    for rule in policy._rules():
        for token in () if rule is None else rule.tokens:
            for group in token.groups:
                for approval in group.approvals:
                    if approval.type is ApprovalType.ONBOARDED_APPROVER_CERTIFICATE and approval.name:
                        names[approval.name] = None
    return tuple(names)


def resolve_onboarded(policy: Policy, certificate_of: Callable[[str], bytes | None], *,
                      field: str | None = None) -> Policy:
    """``policy`` with each onboarded approver's ``value`` set to its current DER certificate
    (``certificate_of(name)``), or emptied when there is no such approver — the one place where
    approver names become keys (docs/approvers.md). With ``field`` (a policy being set on a key),
    an approver that does not exist is 654 instead."""
    names = onboarded_names(policy)
    if not names:
        return policy
    found = {name: certificate_of(name) for name in names}
    if field is not None:
        missing = [name for name, certificate in found.items() if certificate is None]
        if missing:
            raise errors.TsbError(f"'{field}' names approver(s) that do not exist: {', '.join(missing)}", code=654)

    def approval(entry: Approval) -> Approval:
        if entry.type is not ApprovalType.ONBOARDED_APPROVER_CERTIFICATE:
            return entry
        return Approval(entry.type, entry.name, found.get(entry.name or "") or b"")

    def rule(old: Rule | None) -> Rule | None:
        if old is None:
            return None
        return Rule(tuple(Token(token.name, token.timelock, token.timeout, tuple(
            Group(group.name, group.quorum, tuple(approval(a) for a in group.approvals))
            for group in token.groups)) for token in old.tokens))

    return Policy(rule(policy.rule_use), rule(policy.rule_block), rule(policy.rule_unblock),
                  rule(policy.rule_modify), policy.blocked)


def approvers(rule: Rule | None) -> list[Approval]:
    """Distinct approvers of a rule (by identity), in policy order: one task each."""
    seen: set[bytes] = set()
    out: list[Approval] = []
    for token in () if rule is None else rule.tokens:
        for group in token.groups:
            for approval in group.approvals:
                if approval.identity not in seen:
                    seen.add(approval.identity)
                    out.append(approval)
    return out


def is_time_less(rule: Rule | None) -> bool:
    """True when no token of the rule has a timelock or timeout: approvals need no HSM timestamp."""
    return rule is None or all(token.is_time_less for token in rule.tokens)


# --------------------------------------------------------------------------------------------------
# Wire JSON: parsing with validation
# --------------------------------------------------------------------------------------------------


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise errors.ValidationFailed(f"'{field}' must be a JSON object")
    return value


def _array(value: Any, field: str) -> list[Any]:
    """A JSON array; null counts as empty (``tokens`` and ``groups`` are nullable)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.ValidationFailed(f"'{field}' must be an array")
    return value


def _required(obj: Mapping[str, Any], key: str, field: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise errors.ValidationFailed(f"'{field}' must not be null")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise errors.ValidationFailed(f"'{field}' must be a string")
    return value


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.ValidationFailed(f"'{field}' must be an integer")
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise errors.ValidationFailed(f"'{field}' must be a boolean")
    return value


def _seconds(obj: Mapping[str, Any], key: str, field: str) -> int:
    """A timelock/timeout: non-null whole minutes in seconds, 0 … MAX_SECONDS."""
    value = _integer(_required(obj, key, field), field)
    if value < 0:
        raise errors.ValidationFailed(f"'{field}' must not be negative")
    if value % 60:
        raise errors.ValidationFailed(f"'{field}' seconds must represent full minutes")
    if value > MAX_SECONDS:
        raise errors.ValidationFailed(f"'{field}' must not exceed {MAX_SECONDS} seconds")
    return value


def _der_from_base64(value: Any, field: str) -> bytes:
    text = _string(value, field)
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.ValidationFailed(f"'{field}' must be base64") from exc
    if not der:
        raise errors.ValidationFailed(f"'{field}' must not be empty")
    return der


_SUPPORTED_KEYS = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)


def _check_key_type(key: object, field: str) -> None:
    if not isinstance(key, _SUPPORTED_KEYS):
        kind = type(key).__name__.removesuffix("PublicKey")
        raise errors.TsbError(
            f"'{field}': approver key type {kind} is not supported (RSA, EC, Ed25519)", code=601
        )


def _check_public_key(der: bytes, field: str) -> None:
    """``der`` must be a DER SPKI (else 407) of an RSA, EC or Ed25519 key (else 601)."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        try:
            oid = spki_algorithm(der)
        except TokenFormatError:
            raise errors.TsbError(f"'{field}' is not a DER SubjectPublicKeyInfo", code=407) from None
        raise errors.TsbError(
            f"'{field}': approver key (algorithm {oid}) is not supported (RSA, EC, Ed25519)", code=601
        ) from None
    _check_key_type(key, field)


def _certificate_name(der: bytes, field: str) -> str:
    """Validate a DER certificate approver and return its subject CN (the approver's name)."""
    try:
        cert = x509.load_der_x509_certificate(der)
        certificate_public_key(der)
    except (ValueError, TokenFormatError):
        raise errors.TsbError(f"'{field}' is not a DER X.509 certificate", code=409) from None
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise errors.TsbError(f"'{field}': the certificate's key type is not supported", code=601) from None
    _check_key_type(key, field)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = names[0].value if names else ""
    if not isinstance(name, str) or not name:
        raise errors.TsbError(f"'{field}': the certificate has no subject CN to name the approver", code=604)
    return name


def _approval(data: Any, field: str) -> Approval:
    obj = _object(data, field)
    raw_type = _string(_required(obj, "type", f"{field}.type"), f"{field}.type")
    try:
        kind = ApprovalType(raw_type)
    except ValueError:
        raise errors.ValidationFailed(f"Value '{raw_type}' is not valid for field '{field}.type'") from None
    name = obj.get("name")
    if name is not None:
        name = _string(name, f"{field}.name")
    if kind is ApprovalType.ONBOARDED_APPROVER_CERTIFICATE:  # resolved by name when the policy is read
        if not name:
            raise errors.TsbError(f"'{field}.name' must name the onboarded approver", code=604)
        return Approval(kind, name, b"")
    der = _der_from_base64(_required(obj, "value", f"{field}.value"), f"{field}.value")
    if kind is ApprovalType.PUBLIC_KEY:
        _check_public_key(der, f"{field}.value")
        return Approval(kind, name, der)
    if name:
        raise errors.TsbError(
            f"'{field}.name' must not be set for a certificate approval: the name is the certificate's CN",
            code=604,
        )
    return Approval(kind, _certificate_name(der, f"{field}.value"), der)


def _group(data: Any, field: str) -> Group:
    obj = _object(data, field)
    name = _string(_required(obj, "name", f"{field}.name"), f"{field}.name")
    raw_approvals = _array(obj.get("approvals"), f"{field}.approvals")
    if not raw_approvals:
        raise errors.ValidationFailed(f"'{field}.approvals' must not be empty")
    approvals: list[Approval] = []
    seen: set[bytes] = set()
    for index, raw in enumerate(raw_approvals):
        approval = _approval(raw, f"{field}.approvals[{index}]")
        if approval.identity in seen:
            raise errors.ValidationFailed(
                f"'{field}.approvals[{index}]' repeats an approver already listed in the group"
            )
        seen.add(approval.identity)
        approvals.append(approval)
    quorum = _integer(_required(obj, "quorum", f"{field}.quorum"), f"{field}.quorum")
    if not 1 <= quorum <= len(approvals):
        raise errors.ValidationFailed(
            f"'{field}.quorum' must be between 1 and the number of approvals ({len(approvals)})"
        )
    return Group(name, quorum, tuple(approvals))


def _token(data: Any, field: str) -> Token:
    obj = _object(data, field)
    name = _string(_required(obj, "name", f"{field}.name"), f"{field}.name")
    timelock = _seconds(obj, "timelock", f"{field}.timelock")
    timeout = _seconds(obj, "timeout", f"{field}.timeout")
    groups = tuple(
        _group(raw, f"{field}.groups[{index}]")
        for index, raw in enumerate(_array(obj.get("groups"), f"{field}.groups"))
    )
    return Token(name, timelock, timeout, groups)


def _rule(data: Any, field: str) -> Rule | None:
    if data is None:
        return None
    obj = _object(data, field)
    tokens = _array(obj.get("tokens"), f"{field}.tokens")
    return Rule(tuple(_token(raw, f"{field}.tokens[{index}]") for index, raw in enumerate(tokens)))


# --------------------------------------------------------------------------------------------------
# Wire JSON: rendering
# --------------------------------------------------------------------------------------------------


def _approval_wire(approval: Approval) -> dict[str, Any]:
    value = base64.b64encode(approval.value).decode()
    if approval.type is ApprovalType.CERTIFICATE:  # the name is the CN; sending it back would be a 604
        return {"type": approval.type.value, "value": value}
    if approval.type is ApprovalType.ONBOARDED_APPROVER_CERTIFICATE:
        return {"type": approval.type.value, "name": approval.name}
    return {"type": approval.type.value, "name": approval.name, "value": value}


def _rule_wire(rule: Rule | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    return {"tokens": [
        {"name": token.name, "timelock": token.timelock, "timeout": token.timeout, "groups": [
            {"name": group.name, "quorum": group.quorum,
             "approvals": [_approval_wire(approval) for approval in group.approvals]}
            for group in token.groups
        ]}
        for token in rule.tokens
    ]}


# --------------------------------------------------------------------------------------------------
# Binary policy (§6.6)
# --------------------------------------------------------------------------------------------------


def _minutes(seconds: int, what: str) -> bytes:
    minutes, rest = divmod(seconds, 60)
    if rest or seconds < 0:
        raise ValueError(f"{what} of {seconds} s is not a whole, non-negative number of minutes")
    return u32(minutes)


def binary_rule(rule: Rule | None) -> bytes:
    """One rule as a container: ``TOKEN_COUNT`` then per token name, timelock, timeout (minutes),
    ``GROUP_COUNT``, then per group name, ``QUORUM``, ``APPROVAL_COUNT``, then per approval name and
    SPKI. A None rule is a container with a token count of 0 (GAP decision)."""
    tokens = () if rule is None else rule.tokens
    tlvs: list[tuple[int, bytes]] = [(Tag.TOKEN_COUNT, u32(len(tokens)))]
    for token in tokens:
        tlvs += [
            (Tag.LABEL_UTF8_STRING, token.name.encode("utf-8")),
            (Tag.MINUTES, _minutes(token.timelock, "timelock")),
            (Tag.MINUTES, _minutes(token.timeout, "timeout")),
            (Tag.GROUP_COUNT, u32(len(token.groups))),
        ]
        for group in token.groups:
            tlvs += [
                (Tag.LABEL_UTF8_STRING, group.name.encode("utf-8")),
                (Tag.QUORUM, u32(group.quorum)),
                (Tag.APPROVAL_COUNT, u32(len(group.approvals))),
            ]
            for approval in group.approvals:
                tlvs += [
                    (Tag.LABEL_UTF8_STRING, (approval.name or "").encode("utf-8")),
                    (Tag.APPROVER_PUBLIC_KEY, approval.identity),
                ]
    return encode_container(tlvs)


def binary_policy(policy: Policy) -> bytes:
    """The binary policy the HSM enforces (``EKA_MODIFY_PAYLOAD``, task ``payload`` of a modify).

    ``u32 len ‖ TLV(RULE_USE, rule) ‖ TLV(RULE_BLOCK, rule) ‖ TLV(RULE_UNBLOCK, rule) ‖
    TLV(RULE_MODIFY, rule)``, each rule as :func:`binary_rule`. keyStatus is not part of it.

    GAP decisions (the public samples only show 1 token / 1 group / 1 approver / quorum 1, where all
    four values are 1): ``TOKEN_COUNT`` (0x0059) = number of tokens, ``GROUP_COUNT`` (0x005A) =
    number of groups, ``QUORUM`` (0x005B) = the group's quorum, ``APPROVAL_COUNT`` (0x0003) = number of
    approvals; integers are u32; timelock and timeout in whole minutes; a nameless approval carries an
    empty name TLV; a certificate approval carries the certificate's CN and SPKI.
    Raises TokenFormatError when a part outgrows its 16-bit TLV length.
    """
    return encode_container(
        (tag, binary_rule(rule)) for tag, rule in zip(_RULE_TAGS, policy._rules(), strict=True)
    )


# --------------------------------------------------------------------------------------------------
# Attestation XML (§4.6)
# --------------------------------------------------------------------------------------------------

_TEXT_ENTITIES = {"'": "&apos;", '"': "&quot;"}
_ATTR_ENTITIES = {**_TEXT_ENTITIES, "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _attr(value: str) -> str:
    return '"' + escape(value, _ATTR_ENTITIES) + '"'


def _rule_xml(element: str, rule: Rule | None, depth: int) -> list[str]:
    tab = "\t"
    if rule is None or not rule.tokens:
        return [f"{tab * depth}<{element}/>"]
    lines = [f"{tab * depth}<{element}>"]
    for token in rule.tokens:
        lines += [
            f"{tab * (depth + 1)}<token name={_attr(token.name)}>",
            f"{tab * (depth + 2)}<timelock>{token.timelock}</timelock>",
            f"{tab * (depth + 2)}<timeout>{token.timeout}</timeout>",
        ]
        for group in token.groups:
            lines += [
                f"{tab * (depth + 2)}<group name={_attr(group.name)}>",
                f"{tab * (depth + 3)}<quorum>{group.quorum}</quorum>",
            ]
            for approval in group.approvals:
                name = "" if approval.name is None else f" name={_attr(approval.name)}"
                value = base64.b64encode(approval.value).decode()
                kind = _attr(approval.type.value)
                lines.append(f"{tab * (depth + 3)}<approval type={kind}{name}>{value}</approval>")
            lines.append(f"{tab * (depth + 2)}</group>")
        lines.append(f"{tab * (depth + 1)}</token>")
    lines.append(f"{tab * depth}</{element}>")
    return lines


def policy_xml(policy: Policy, depth: int = 1) -> list[str]:
    """The ``<policy>`` element of the attestation XML as tab-indented lines (no line ends).

    ``depth`` is the indentation of ``<policy>`` itself (1 = child of ``<private_key>``). One element
    per line, times in seconds, token/group names and approval type/name as attributes, the approval
    value (b64 SPKI or certificate) as text. An absent or empty rule is an empty element.
    """
    tab = "\t"
    lines = [
        f"{tab * depth}<policy>",
        f"{tab * (depth + 1)}<key_status>",
        f"{tab * (depth + 2)}<blocked>{'true' if policy.blocked else 'false'}</blocked>",
        f"{tab * (depth + 1)}</key_status>",
    ]
    for (_, element), rule in zip(_RULE_NAMES, policy._rules(), strict=True):
        lines += _rule_xml(element, rule, depth + 1)
    lines.append(f"{tab * depth}</policy>")
    return lines


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


class EvaluationStatus(enum.StrEnum):
    """Where a request stands with respect to its rule."""

    PENDING = "PENDING"  # more approvals needed, still possible
    APPROVED_WAITING_TIMELOCK = "APPROVED_WAITING_TIMELOCK"  # a token is satisfied, its timelock runs
    FULFILLED = "FULFILLED"  # a token is satisfied and its timelock has passed: execute
    EXPIRED = "EXPIRED"  # every token has timed out
    REJECTED = "REJECTED"  # rejections leave no token that can still be satisfied in time


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Result of :func:`evaluate`.

    ``token``: the token that is fulfilled or waiting (first in policy order, or the one whose
    timelock ends first). ``ready_at``: for APPROVED_WAITING_TIMELOCK, when it becomes FULFILLED.
    ``expires_at``: for PENDING / APPROVED_WAITING_TIMELOCK, when the last live token times out
    (None if one never does).
    """

    status: EvaluationStatus
    token: Token | None = None
    ready_at: datetime | None = None
    expires_at: datetime | None = None


def evaluate(
    rule: Rule | None,
    approvals: AbstractSet[bytes],
    rejected: AbstractSet[bytes],
    created_at: datetime,
    now: datetime,
) -> Evaluation:
    """Evaluate ``rule`` for a request created at ``created_at`` as of ``now``.

    ``approvals`` / ``rejected``: identities (DER SPKI) of approvers that approved / rejected; an
    identity in both counts as rejected. A token expires when ``timeout > 0`` and ``now >
    created_at + timeout``; a satisfied token is fulfilled once ``now >= created_at + timelock``.
    ``created_at`` and ``now`` must both be aware (or both naive). A None or empty rule is fulfilled.
    """
    if rule is None or not rule.tokens:
        return Evaluation(EvaluationStatus.FULFILLED)
    refused = frozenset(rejected)
    approved = frozenset(approvals) - refused
    fulfilled: list[Token] = []
    waiting: list[tuple[datetime, Token]] = []
    live_deadlines: list[datetime | None] = []
    expired = 0
    for token in rule.tokens:
        deadline = created_at + timedelta(seconds=token.timeout) if token.timeout > 0 else None
        if deadline is not None and now > deadline:
            expired += 1
            continue
        satisfied = possible = True
        for group in token.groups:
            members = {approval.identity for approval in group.approvals}
            satisfied &= len(members & approved) >= group.quorum
            possible &= len(members - refused) >= group.quorum
        if satisfied:
            ready_at = created_at + timedelta(seconds=token.timelock)
            if now >= ready_at:
                fulfilled.append(token)
            else:
                waiting.append((ready_at, token))
            live_deadlines.append(deadline)
        elif possible:
            live_deadlines.append(deadline)
    if fulfilled:
        return Evaluation(EvaluationStatus.FULFILLED, fulfilled[0])
    finite = [deadline for deadline in live_deadlines if deadline is not None]
    expires_at = max(finite) if finite and len(finite) == len(live_deadlines) else None
    if waiting:
        ready_at, token = min(waiting, key=lambda item: item[0])
        return Evaluation(EvaluationStatus.APPROVED_WAITING_TIMELOCK, token, ready_at, expires_at)
    if live_deadlines:
        return Evaluation(EvaluationStatus.PENDING, expires_at=expires_at)
    if expired == len(rule.tokens):
        return Evaluation(EvaluationStatus.EXPIRED)
    return Evaluation(EvaluationStatus.REJECTED)
