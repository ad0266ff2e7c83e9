"""Approvers: authentication by timestamp signature, task lists, approvals, rejections, and the
``signedApprovals`` of the synchronous SKA operations (reference §6.3, §6.4, §6.8).

Signatures (approver side, "JDK format"):

* ``timestampSignature``: over the UTF-8 bytes of ``timestamp``; ``approvalSignature``: over the
  *base64-decoded* ``approvalToBeSigned``. The algorithm is the digest named by
  ``timestampDigestAlgorithm`` / ``approvalDigestAlgorithm`` (``SHA-224`` … ``SHA-512``,
  ``SHA3-224`` … ``SHA3-512``; absent: ``SHA-256``) with the approver key's type: RSA →
  RSASSA-PKCS1-v1_5 (never PSS), EC → ECDSA with a DER ``SEQUENCE{r, s}``, Ed25519 → pure EdDSA,
  raw 64 bytes (digest ``EdDSA``; for an Ed25519 key the digest name is ignored). This is what
  ``openssl dgst -sha256 -sign approver.pem`` produces.
* The approver is identified by ``approverPublicKey`` (DER SPKI) or ``approverCertificate`` (its
  SPKI counts) and must be the approver of the task.

The timestamp must lie within ``HSMGATE_MAX_TIMESTAMP_DIFF`` seconds (default 600) before the
server time and at most ``HSMGATE_MAX_FUTURE_TIMESTAMP_DIFF`` (default 0) after it, else 404
``res.error.input.timestamp.off``. A *timestamp signer* (a certificate listed in
``HSMGATE_TIMESTAMP_SIGNING_CERTIFICATES``) may fetch the tasks of every approver (or of the one
named) but never approve; an unlisted one gets 405.

Decisions (GAPs): an approver posting for a task that is not theirs — including an approver not
named in the rule at all — gets HTTP 403 with code 415 ``res.error.request.signer.not.allowed``; an
invalid signature, or a token that is not the one of the task's request, code 403
``res.error.input.invalid.signature`` (HTTP 400 by the reference's code→status rule); a second
approval of the same task code 615 (HTTP 400) — an approver counts once; a task of a request that
is no longer PENDING/APPROVED is gone (652, 404).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from hsmgate.domain import errors
from hsmgate.domain.clock import Clock
from hsmgate.domain.ska.approval_token import (
    HsmTimestamp,
    Operation,
    SignedApproval,
    TokenFormatError,
    approver_public_key,
    signature_with_algorithm,
)
from hsmgate.domain.ska.approvers import ApproverService
from hsmgate.domain.ska.guard import authorized
from hsmgate.domain.ska.policy import EvaluationStatus, Rule, evaluate
from hsmgate.domain.ska.requests import KINDS, RequestKind, RequestService, SkaAudit, run_audited, utc
from hsmgate.domain.ska.timestamp_key import TimestampService
from hsmgate.store.models import SkaRequestRow, SkaTaskRow
from hsmgate.store.requests import LIVE, SortOrder, TaskState

ED25519_OID = "1.3.101.112"


@dataclass(frozen=True, slots=True)
class _Digest:
    name: str
    algorithm: type[hashes.HashAlgorithm]
    rsa_oid: str
    ecdsa_oid: str


_DIGESTS = {
    d.name: d for d in (
        _Digest("SHA-224", hashes.SHA224, "1.2.840.113549.1.1.14", "1.2.840.10045.4.3.1"),
        _Digest("SHA-256", hashes.SHA256, "1.2.840.113549.1.1.11", "1.2.840.10045.4.3.2"),
        _Digest("SHA-384", hashes.SHA384, "1.2.840.113549.1.1.12", "1.2.840.10045.4.3.3"),
        _Digest("SHA-512", hashes.SHA512, "1.2.840.113549.1.1.13", "1.2.840.10045.4.3.4"),
        _Digest("SHA3-224", hashes.SHA3_224, "2.16.840.1.101.3.4.3.13", "2.16.840.1.101.3.4.3.9"),
        _Digest("SHA3-256", hashes.SHA3_256, "2.16.840.1.101.3.4.3.14", "2.16.840.1.101.3.4.3.10"),
        _Digest("SHA3-384", hashes.SHA3_384, "2.16.840.1.101.3.4.3.15", "2.16.840.1.101.3.4.3.11"),
        _Digest("SHA3-512", hashes.SHA3_512, "2.16.840.1.101.3.4.3.16", "2.16.840.1.101.3.4.3.12"),
    )
}
_BY_OID: dict[str, tuple[str, _Digest | None]] = {ED25519_OID: ("ed25519", None)}
for _d in _DIGESTS.values():
    _BY_OID[_d.rsa_oid] = ("rsa", _d)
    _BY_OID[_d.ecdsa_oid] = ("ec", _d)
EDDSA = "EdDSA"
DIGEST_NAMES = (*_DIGESTS, EDDSA)


def digest_name(value: str | None, field: str) -> str | None:
    """``SHA-256`` (also ``SHA256``, ``sha-256``), ``SHA3-256``, ``EdDSA``; None stays None."""
    if value is None or value == "":
        return None
    text = value.strip().upper().replace("_", "-")
    if text in ("EDDSA", "ED25519"):
        return EDDSA
    match = re.fullmatch(r"SHA(3)?-?(224|256|384|512)", text)
    if match:
        return f"SHA{'3' if match.group(1) else ''}-{match.group(2)}"
    raise errors.ValidationFailed(f"Value '{value}' is not valid for field '{field}'; expected one of "
                                  + ", ".join(DIGEST_NAMES))


def _public_key(spki: bytes, field: str) -> object:
    try:
        return serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm):
        raise errors.TsbError(f"'{field}' is not a supported DER public key", code=407) from None


def verify_signature(spki: bytes, digest: str | None, data: bytes, signature: bytes, *,
                     field: str, what: str) -> str:
    """Check an approver's JDK-format signature; returns the signature algorithm OID.

    Raises 600 for a digest the key type cannot use, 601 for an unsupported key type and 403
    ``res.error.input.invalid.signature`` for a signature that does not verify."""
    key = _public_key(spki, "approver")
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):  # pure EdDSA: the digest name does not matter
            key.verify(signature, data)
            return ED25519_OID
        if digest == EDDSA:
            raise errors.ValidationFailed(f"'{field}' EdDSA needs an Ed25519 approver key")
        row = _DIGESTS[digest or "SHA-256"]
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), row.algorithm())
            return row.rsa_oid
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(row.algorithm()))
            return row.ecdsa_oid
    except InvalidSignature:
        raise errors.TsbError(f"{what} does not verify with the approver's key", code=403) from None
    raise errors.TsbError("approver key type is not supported (RSA, EC, Ed25519)", code=601)


def verify_with_oid(spki: bytes, oid: str, data: bytes, signature: bytes) -> bool:
    """Verify a signature whose algorithm is given by OID (a ``signedApprovals`` element)."""
    entry = _BY_OID.get(oid)
    if entry is None:
        return False
    kind, digest = entry
    try:
        key = serialization.load_der_public_key(spki)
        if kind == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
        if digest is None:
            return False
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), digest.algorithm())
            return True
        if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(digest.algorithm()))
            return True
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return False


_TIMESTAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 timestamp with seconds, optional fraction and ``Z`` or ``±hh:mm``."""
    match = _TIMESTAMP.match(text or "")
    if not match:
        raise errors.ValidationFailed(
            "'timestamp' must be an ISO-8601 time with seconds and a zone, e.g. 2024-12-01T10:00:00.123Z")
    base, fraction, zone = match.groups()
    fraction = ((fraction or "") + "000000")[:6]
    try:
        return datetime.fromisoformat(f"{base}.{fraction}{'+00:00' if zone == 'Z' else zone}").astimezone(UTC)
    except ValueError:
        raise errors.ValidationFailed(f"'timestamp' {text!r} is not a valid time") from None


@dataclass(frozen=True, slots=True)
class Authentication:
    """The ``AuthenticatableRequestDto`` fields of a task fetch or task deletion."""

    timestamp: str | None
    timestamp_signature: bytes | None
    timestamp_digest_algorithm: str | None = None
    approver_public_key: bytes | None = None
    approver_certificate: bytes | None = None
    timestamp_signing_certificate: bytes | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated approver (``approver`` = its SPKI) or timestamp signer (``approver``: the
    approver whose tasks it asked for, None for all)."""

    approver: bytes | None
    timestamp_signer: bool = False


@dataclass(frozen=True, slots=True)
class Paging:
    page_number: int = 0
    page_size: int | None = None
    sort_order: SortOrder = SortOrder.CREATION_DATE_ASC


@dataclass(frozen=True, slots=True)
class TaskItem:
    """One task as the task list renders it, with its request."""

    task: SkaTaskRow
    request: SkaRequestRow

    @property
    def kind(self) -> RequestKind:
        return RequestKind(self.task.kind)


def approver_identity(public_key: bytes | None, certificate: bytes | None, *, required: bool = True) -> bytes | None:
    """The approver's SPKI from ``approverPublicKey`` or ``approverCertificate``."""
    if public_key:
        try:
            return approver_public_key(public_key)
        except TokenFormatError:
            raise errors.TsbError("'approverPublicKey' is not a DER public key", code=407) from None
    if certificate:
        try:
            return approver_public_key(certificate)
        except TokenFormatError:
            raise errors.TsbError("'approverCertificate' is not a DER X.509 certificate", code=409) from None
    if required:
        raise errors.ValidationFailed("'approverPublicKey' or 'approverCertificate' must not be null")
    return None


def _not_allowed(message: str) -> errors.TsbError:
    return errors.TsbError(message, code=415, status=403)


def _task_gone(message: str) -> errors.TsbError:
    return errors.TsbError(message, code=652)


class ApprovalService:
    """Approver-side operations on the SKA requests of one partition."""

    def __init__(self, requests: RequestService, *, clock: Clock, max_timestamp_diff: int = 600,
                 max_future_timestamp_diff: int = 0, timestamp_signers: Sequence[bytes] = ()) -> None:
        self.requests = requests
        self.repository = requests.repository
        self.clock = clock
        self.max_timestamp_diff = max_timestamp_diff
        self.max_future_timestamp_diff = max_future_timestamp_diff
        self.timestamp_signers = frozenset(bytes(cert) for cert in timestamp_signers)

    # -- authentication -----------------------------------------------------------------------------

    def authenticate(self, auth: Authentication) -> Caller:
        if not auth.timestamp:
            raise errors.ValidationFailed("'timestamp' must not be null")
        if not auth.timestamp_signature:
            raise errors.ValidationFailed("'timestampSignature' must not be null")
        moment = parse_timestamp(auth.timestamp)
        now = self.clock.now()
        age = (now - moment).total_seconds()
        if age > self.max_timestamp_diff:
            raise errors.TsbError(f"'timestamp' {auth.timestamp} is more than {self.max_timestamp_diff} s "
                                  "older than the server time", code=404)
        if -age > self.max_future_timestamp_diff:
            raise errors.TsbError(f"'timestamp' {auth.timestamp} is ahead of the server time by more than "
                                  f"{self.max_future_timestamp_diff} s", code=404)
        digest = digest_name(auth.timestamp_digest_algorithm, "timestampDigestAlgorithm")
        approver = approver_identity(auth.approver_public_key, auth.approver_certificate, required=False)
        if auth.timestamp_signing_certificate:
            if bytes(auth.timestamp_signing_certificate) not in self.timestamp_signers:
                raise errors.TsbError("'timestampSigningCertificate' is not an allowed timestamp signer", code=405)
            signer = approver_identity(None, auth.timestamp_signing_certificate)
            assert signer is not None
            verify_signature(signer, digest, auth.timestamp.encode(), auth.timestamp_signature,
                             field="timestampDigestAlgorithm", what="'timestampSignature'")
            return Caller(approver, timestamp_signer=True)
        if approver is None:
            raise errors.ValidationFailed("'approverPublicKey' or 'approverCertificate' must not be null")
        verify_signature(approver, digest, auth.timestamp.encode(), auth.timestamp_signature,
                         field="timestampDigestAlgorithm", what="'timestampSignature'")
        return Caller(approver)

    # -- tasks --------------------------------------------------------------------------------------

    def tasks(self, caller: Caller, filter_kinds: Sequence[str], *, task_id: str | None = None,
              request_id: str | None = None, paging: Paging | None = None) -> list[TaskItem]:
        """Open tasks of live requests the caller may see; their LAST_FETCHED_DATE becomes now."""
        paging = paging or Paging()
        offset = paging.page_number * paging.page_size if paging.page_size else 0
        now = self.requests.now()
        rows = self.repository.open_tasks(
            approver=caller.approver, kinds=filter_kinds, task_id=task_id, request_id=request_id,
            order=paging.sort_order, offset=offset, limit=paging.page_size,
        )
        items = [TaskItem(task, request) for task, request in rows
                 if request.expires_at is None or utc(request.expires_at) >= now]  # type: ignore[operator]
        self.repository.touch([item.task.id for item in items], now)
        return items

    def _request_of_task(self, task_id: str) -> tuple[str | None, str | None]:
        """(request id, key label) of a task, for its audit record; Nones when unknown."""
        task = self.repository.task(task_id)
        if task is None:
            return None, None
        request = self.repository.get(task.request_id)
        return task.request_id, request.key_label if request is not None else None

    def approve(self, *, task_id: str, token: bytes, signature: bytes, digest_algorithm: str | None,
                approver_public_key: bytes | None, approver_certificate: bytes | None,
                audit: SkaAudit | None = None) -> None:
        """``POST /v1/approval``: verify and record one approver's approval, then evaluate;
        recorded in ``audit`` as ``approveTask`` (and an execution it causes as ``execute<Kind>``)."""
        request_id, label = self._request_of_task(task_id)
        run_audited(audit, "approveTask", label, request_id, lambda: self._approve(
            task_id=task_id, token=token, signature=signature, digest_algorithm=digest_algorithm,
            approver_public_key=approver_public_key, approver_certificate=approver_certificate, audit=audit))

    def _approve(self, *, task_id: str, token: bytes, signature: bytes, digest_algorithm: str | None,
                 approver_public_key: bytes | None, approver_certificate: bytes | None,
                 audit: SkaAudit | None) -> None:
        task = self.repository.task(task_id)
        if task is None:
            raise _task_gone(f"task '{task_id}' does not exist")
        identity = approver_identity(approver_public_key, approver_certificate)
        if identity != task.approver:
            raise _not_allowed("the approver is not the approver of this task (not named in the key's policy "
                               "for this request, or another approver's task)")
        request = self.repository.get(task.request_id)
        if request is None or request.status not in LIVE:
            status = "gone" if request is None else request.status
            raise _task_gone(f"task '{task_id}' does not exist any more: its request is {status}")
        if request.token is None or bytes(token) != bytes(request.token):
            raise errors.TsbError("'approvalToBeSigned' is not the token of this task's request", code=403)
        digest = digest_name(digest_algorithm, "approvalDigestAlgorithm")
        oid = verify_signature(identity, digest, bytes(token), signature, field="approvalDigestAlgorithm",
                               what="'signature' over the decoded approvalToBeSigned")
        if task.state == TaskState.APPROVED.value:
            raise errors.TsbError(f"task '{task_id}' is approved already; an approver counts once", code=615)
        if task.state == TaskState.REJECTED.value:
            raise _task_gone(f"task '{task_id}' was deleted (rejected) by its approver")
        now = self.requests.now()
        expires = utc(request.expires_at)
        if expires is not None and now > expires:
            self.requests.advance(request.id, audit)
            raise _task_gone(f"task '{task_id}' does not exist any more: its request expired")
        if not self.repository.decide(task_id, TaskState.APPROVED, now, signature_with_algorithm(signature, oid)):
            raise errors.TsbError(f"task '{task_id}' is decided already; an approver counts once", code=615)
        self.requests.advance(request.id, audit)

    def reject(self, caller: Caller | Authentication, task_id: str, audit: SkaAudit | None = None) -> None:
        """``/v1/task``: the approver deletes (rejects) an open task; the request is re-evaluated.
        Recorded in ``audit`` as ``rejectTask`` — with a failed authentication when ``caller`` is the
        request's :class:`Authentication`."""
        request_id, label = self._request_of_task(task_id)

        def call() -> None:
            self._reject(caller if isinstance(caller, Caller) else self.authenticate(caller), task_id, audit)

        run_audited(audit, "rejectTask", label, request_id, call)

    def _reject(self, caller: Caller, task_id: str, audit: SkaAudit | None) -> None:
        task = self.repository.task(task_id)
        if task is None:
            raise _task_gone(f"task '{task_id}' does not exist")
        if (caller.approver is not None and caller.approver != task.approver) or \
                (caller.approver is None and not caller.timestamp_signer):
            raise _not_allowed("the caller is not the approver of this task")
        request = self.repository.get(task.request_id)
        if request is None or request.status not in LIVE or task.state != TaskState.OPEN.value:
            raise _task_gone(f"task '{task_id}' is not open any more")
        if not self.repository.decide(task_id, TaskState.REJECTED, self.requests.now()):
            raise _task_gone(f"task '{task_id}' is not open any more")
        self.requests.advance(request.id, audit)

    # -- synchronous operations with signedApprovals (§6.8) -----------------------------------------

    def check_signed_approvals(self, label: str, operation: Operation, payload: bytes,
                               signed: Sequence[bytes]) -> None:
        """Raise unless ``signed`` (serialised ``PrimusAuthorizationToken``s) fulfil the rule of
        ``operation`` on key ``label`` now. A key without policy needs none.

        Each element must be a valid approval of *this* operation and payload by a key named in
        the rule; time-less tokens count for the rule's time-less tokens, timed ones (HSM timestamp
        of this partition, same key label) for its timed tokens, measured from their timestamp.
        """
        policy = self.requests.keys.ska_policy(label)
        if policy is None:
            return
        if operation is Operation.USE and policy.blocked:
            raise errors.OperationForbiddenForKey(f"key '{label}' is blocked; unblock it first")
        rule = policy.rule_for(operation)
        tag = operation.payload_tag
        everyone: set[bytes] = set()
        timed: dict[bytes, set[bytes]] = {}
        for index, raw in enumerate(signed):
            where = f"signedApprovals[{index}]"
            try:
                approval = SignedApproval.decode(raw)
                token = approval.approval
                identity = approval.approver_public_key
                oid, signature = approval.signature_algorithm_oid, approval.signature
            except TokenFormatError as exc:
                raise errors.ValidationFailed(f"'{where}' is not a serialised approval: {exc}") from None
            if token.operation is not operation or token.payload_tag is not tag or token.payload != payload:
                raise errors.TsbError(f"'{where}' approves another operation or payload", code=403)
            if not verify_with_oid(identity, oid, approval.approval_to_be_signed, signature):
                raise errors.TsbError(f"'{where}': the approver's signature does not verify", code=403)
            everyone.add(identity)
            if token.is_time_less:
                continue
            stamp, stamp_signature = token.hsm_timestamp, token.timestamp_signature
            assert stamp is not None and token.timestamp is not None and stamp_signature is not None
            if token.label != label or stamp.key_name != self.requests.timestamps.key_name or \
                    not self.requests.timestamps.verify(token.timestamp, stamp_signature):
                raise errors.TsbError(f"'{where}': the HSM timestamp is not this partition's for key '{label}'",
                                      code=403)
            timed.setdefault(token.timestamp, set()).add(identity)
        if rule is None or not rule.tokens:
            return
        now = self.requests.now()
        time_less = Rule(tuple(t for t in rule.tokens if t.is_time_less))
        if time_less.tokens and evaluate(time_less, frozenset(everyone), frozenset(), now, now).status \
                is EvaluationStatus.FULFILLED:
            return
        timed_rule = Rule(tuple(t for t in rule.tokens if not t.is_time_less))
        waiting = False
        for blob, identities in timed.items() if timed_rule.tokens else ():
            created = HsmTimestamp.decode(blob).moment
            status = evaluate(timed_rule, frozenset(identities), frozenset(), created, now).status
            if status is EvaluationStatus.FULFILLED:
                return
            waiting |= status is EvaluationStatus.APPROVED_WAITING_TIMELOCK
        reason = "their timelock has not passed yet" if waiting else "they do not fulfil the key's policy"
        raise errors.TsbError(f"'signedApprovals': {len(signed)} approval(s) given, but {reason}", code=401)

    @contextmanager
    def synchronous_use(self, label: str, payload: bytes, signed: Sequence[bytes]) -> Iterator[None]:
        """Check ``signedApprovals`` of a synchronous use (sign, decrypt, unwrap), then let it run."""
        self.check_signed_approvals(label, Operation.USE, payload, signed)
        with authorized(self.requests.partition_name, label):
            yield

    def synchronous_management(self, kind: RequestKind, label: str, payload: bytes,
                               inner: dict[str, object], signed: Sequence[bytes]) -> str:
        """``/v1/synchronousBlock|Unblock|Modify``: check the approvals, apply at once."""
        self.requests.refuse_internal(kind, label, label)
        if self.requests.keys.ska_policy(label) is None:
            raise errors.OperationForbiddenForKey(
                f"key '{label}' has no policy (not an SKA key): it cannot be blocked, unblocked or modified")
        self.check_signed_approvals(label, KINDS[kind].operation, payload, signed)
        return self.requests.execute_synchronously(kind, label, dict(inner))



@dataclass(frozen=True, slots=True)
class SkaServices:
    """The SKA services of one partition (``PartitionServices.ska``)."""

    requests: RequestService
    approvals: ApprovalService
    timestamps: TimestampService
    #: approver management (docs/approvers.md); None until ``bootstrap`` has built it
    approvers: ApproverService | None = None

    def require_approvers(self) -> ApproverService:
        """The approver management service, or 611 where it is not available."""
        if self.approvers is None:
            raise errors.UnsupportedOperation("approver management is not available on this partition")
        return self.approvers
