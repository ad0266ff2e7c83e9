"""Asynchronous SKA requests: creation, evaluation, execution (exactly once), expiry, cancellation.

Lifecycle (reference §6.2)::

    submit ──► PENDING ──(a token's groups reach their quorum)──► APPROVED ──(timelock passed)──► EXECUTED
                  │                                                  │                      └──► FAILED
                  ├──(every token timed out)──► EXPIRED ◄────────────┤
                  ├──(rejections leave no token)──► REJECTED         │
                  └──(DELETE /v1/request/{id}, key deleted)──► CANCELLED ◄┘

* :meth:`RequestService.submit` validates the operation, reads the key's policy and the rule of
  the operation. A key without policy, or whose rule is always fulfilled, executes at once (the
  request is stored EXECUTED; a failure is answered directly, as the synchronous endpoint would).
  Otherwise it builds the ``approvalToBeSigned`` (timed with an HSM timestamp signed by the
  partition's timestamp key, or time-less when no token of the rule has a timelock or timeout),
  stores the request and one task per approver of the rule.
* :meth:`RequestService.advance` evaluates the rule (:func:`hsmgate.domain.ska.policy.evaluate`) on the
  recorded approvals and rejections and moves the request on. It is called after every approval
  and rejection and by the :class:`RequestScheduler` of each process for APPROVED requests whose
  timelock passed and requests past their expiry — so pending requests survive restarts.
* Execution is claimed with a conditional UPDATE to EXECUTING (``store/requests.py``): only the
  process whose UPDATE matched runs the operation, so a request executes exactly once even with
  several processes on one database. The operation runs inside
  :func:`hsmgate.domain.ska.guard.authorized` — the approvals were checked, the key's use is allowed —
  but a blocked key still refuses it.
* Results are stored sealed and erased on ``DELETE`` of an executed request or after the retention
  (:mod:`hsmgate.domain.ska.results`).
* A process that dies between claim and result leaves the request EXECUTING; after
  ``stale_after`` seconds the scheduler marks it FAILED (it cannot know whether the HSM ran it, so
  it never runs it twice).

Audit. Every creation (``request<Kind>``), execution (``execute<Kind>``), cancellation
(``cancelRequest``), approval and rejection (``approveTask`` / ``rejectTask``, ``domain/ska/approvals.py``)
is recorded as a mutating operation — a ``started`` record first (refused when it cannot be
written), then the outcome — and every expiry (``expireRequest``), final rejection
(``rejectRequest``) and abandoned execution (``failRequest``) as it happens, each with the request's
id (``ska_request_id``), never a payload. The caller passes where to record (:class:`SkaAudit`: the
HTTP request's :class:`hsmgate.domain.audit.recording.RequestAudit`); the scheduler records through
:attr:`RequestService.scheduler_audit` as the principal ``scheduler``. A result is stored (and so
handed out) only after its execution was recorded.

GAP decisions: the token payload (EkaSignPayload) of a block/unblock request is the UTF-8 key
label (no public sample); decrypt, unwrap and decapsulate carry ``encryptedPayload`` /
``wrappedKey`` / ``ciphertext``; the
certificate operations carry the re-serialised request JSON. A request evaluates the rule of the
policy the key had when the request was made (a later modify does not change pending requests).
"""

from __future__ import annotations

import base64
import contextlib
import enum
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from hsmgate.domain import errors
from hsmgate.domain.clock import Clock
from hsmgate.domain.errors import TsbError
from hsmgate.domain.keys import KeyService, check_key_name, check_label, key_info
from hsmgate.domain.signing import SigningService
from hsmgate.domain.ska.approval_token import ApprovalToBeSigned, Operation
from hsmgate.domain.ska.guard import authorized, load_policy, policy_json
from hsmgate.domain.ska.policy import EvaluationStatus, Policy, Rule, approvers, evaluate, is_time_less
from hsmgate.domain.ska.results import PREFIX as SEALED_PREFIX
from hsmgate.domain.ska.results import ResultSealer, ResultUnreadable
from hsmgate.domain.ska.timestamp_key import TimestampService
from hsmgate.domain.state_errors import state_error
from hsmgate.store.models import SkaRequestRow, SkaTaskRow
from hsmgate.store.requests import LIVE, RequestRepository, TaskState

log = logging.getLogger("hsmgate.ska")
T = TypeVar("T")

MAX_TOKEN_PAYLOAD = 60_000
"""Largest operation payload of an SKA request: it travels in u16-length TLVs (approval token and
HSM timestamp), like the binary policy (``policy.MAX_BINARY_POLICY_SIZE``)."""


class RequestKind(enum.StrEnum):
    SIGN = "SIGN"
    DECRYPT = "DECRYPT"
    UNWRAP = "UNWRAP"
    BLOCK = "BLOCK"
    UNBLOCK = "UNBLOCK"
    MODIFY = "MODIFY"
    CERTIFICATE_REQUEST = "CERTIFICATE_REQUEST"
    CERTIFICATE_SIGN = "CERTIFICATE_SIGN"
    CERTIFICATE_SELF_SIGN = "CERTIFICATE_SELF_SIGN"
    DECAPSULATE = "DECAPSULATE"
    APPROVER_RESTORE = "APPROVER_RESTORE"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """Wire names of one request kind: the rule it needs, the id field of the 201 answer, the
    envelope key, the level-3 task field, the field naming the key, the task filters listing it."""

    operation: Operation
    id_field: str
    envelope: str
    signed_field: str
    key_field: str
    filters: frozenset[str]


def _spec(operation: Operation, id_field: str, envelope: str, signed_field: str, key_field: str,
          *filters: str) -> KindSpec:
    return KindSpec(operation, id_field, envelope, signed_field, key_field, frozenset({*filters, "All"}))


KINDS: dict[RequestKind, KindSpec] = {
    RequestKind.SIGN: _spec(Operation.USE, "signRequestId", "signRequest", "signedSignRequest", "signKeyName",
                            "Sign"),
    RequestKind.DECRYPT: _spec(Operation.USE, "decryptRequestId", "decryptRequest", "signedDecryptRequest",
                               "decryptKeyName", "Decrypt"),
    RequestKind.UNWRAP: _spec(Operation.USE, "unwrapRequestId", "unwrapKeyRequest", "signedUnwrapKeyRequest",
                              "unwrapKeyName", "UnwrapKey"),
    RequestKind.BLOCK: _spec(Operation.BLOCK, "blockKeyRequestId", "blockRequest", "signedBlockKeyRequest",
                             "blockKeyName", "BlockKey"),
    RequestKind.UNBLOCK: _spec(Operation.UNBLOCK, "unblockKeyRequestId", "unblockRequest",
                               "signedUnblockKeyRequest", "unblockKeyName", "UnblockKey"),
    RequestKind.MODIFY: _spec(Operation.MODIFY, "modifyKeyRequestId", "modifyRequest", "signedModifyKeyRequest",
                              "modifyKeyName", "ModifyKey"),
    # GAP: the certificate task filters are not public; their tasks are listed by the Sign and All filters
    RequestKind.CERTIFICATE_REQUEST: _spec(Operation.USE, "signRequestId", "csrSignRequest",
                                           "signedCertificateRequestRequest", "signKeyName", "Sign"),
    RequestKind.CERTIFICATE_SIGN: _spec(Operation.USE, "signRequestId", "signCertificateRequest",
                                        "signedSignCertificateRequest", "signKeyName", "Sign"),
    RequestKind.CERTIFICATE_SELF_SIGN: _spec(Operation.USE, "signRequestId", "selfSignCertificateRequest",
                                             "signedSelfSignCertificateRequestDto", "signKeyName", "Sign"),
    # ML-KEM decapsulation (wave-2 §4.3) uses the key like a decryption: ruleUse, EkaOperation 1, the
    # ciphertext as payload. GAP: the level-3 field and the task filter are named after the DTO
    # (SignedDecapsulationRequestDto) and the other kinds; listed by its own filter and by All
    RequestKind.DECAPSULATE: _spec(Operation.USE, "decapsulationRequestId", "decapsulationRequest",
                                   "signedDecapsulationRequest", "decapsulationKeyName", "Decapsulate"),
    # /v1/approverManagement/restoreFromBackup/forgotPassword (wave-2 §2.3): an unwrap under the
    # approver backup key's policy, listed as an unwrap task; payload = the approver's name (UTF-8)
    RequestKind.APPROVER_RESTORE: _spec(Operation.USE, "unwrapRequestId", "approverRestoreRequest",
                                        "signedUnwrapKeyRequest", "unwrapKeyName", "UnwrapKey"),
}
SIGNED_FIELDS = tuple(dict.fromkeys(spec.signed_field for spec in KINDS.values()))
TASK_FILTERS = ("Sign", "Decrypt", "UnwrapKey", "BlockKey", "UnblockKey", "ModifyKey", "Decapsulate", "All")


def kinds_of_filter(name: str) -> list[str]:
    """The request kinds ``/v1/filtered<name>ApprovalTask`` lists."""
    return [kind.value for kind, spec in KINDS.items() if name in spec.filters]


class SkaAudit(Protocol):
    """Where SKA request events are recorded: :class:`hsmgate.domain.audit.recording.RequestAudit` (of the HTTP
    request, or the scheduler's). ``None`` in its place records nothing."""

    def record(self, operation: str, key_label: str | None, outcome: str, error_code: int | None = None, *,
               ska_request_id: str | None = None) -> None: ...

    def mutating(self, operation: str, key_label: str | None, call: Callable[[], T], *,
                 ska_request_id: str | None = None) -> T: ...


def audit_name(kind: RequestKind) -> str:
    """``SIGN`` → ``Sign``, ``CERTIFICATE_SELF_SIGN`` → ``CertificateSelfSign`` (in ``request<Kind>``,
    ``execute<Kind>``)."""
    return "".join(part.title() for part in kind.value.split("_"))


def run_audited(audit: SkaAudit | None, operation: str, label: str | None, request_id: str | None,
                call: Callable[[], T]) -> T:
    """Run a state change of an SKA request: ``started`` record, the call, its outcome record."""
    if audit is None:
        return call()
    return audit.mutating(operation, label, call, ska_request_id=request_id)


def note(audit: SkaAudit | None, operation: str, label: str | None, request_id: str, outcome: str = "ok",
         error_code: int | None = None) -> None:
    """Record a transition that has happened (expiry, final rejection, abandoned execution). It
    cannot be undone, so a record that cannot be written is only logged (by the audit trail)."""
    if audit is None:
        return
    with contextlib.suppress(TsbError):
        audit.record(operation, label, outcome, error_code, ska_request_id=request_id)


class RequestStatus(enum.StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    EXECUTING = "EXECUTING"  # internal: claimed by one process; shown as APPROVED
    EXECUTED = "EXECUTED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"

    @property
    def wire(self) -> str:
        return RequestStatus.APPROVED.value if self is RequestStatus.EXECUTING else self.value


WIRE_STATUSES = tuple(status.value for status in RequestStatus if status is not RequestStatus.EXECUTING)


@dataclass(frozen=True, slots=True)
class Submission:
    """An asynchronous request: its kind, the key, the payload the approvals are bound to (raw
    operation payload, or the binary policy of a modify) and the envelope as re-serialised JSON."""

    kind: RequestKind
    label: str
    payload: bytes
    envelope: dict[str, Any]

    @property
    def inner(self) -> dict[str, Any]:
        return dict(self.envelope.get(KINDS[self.kind].envelope) or {})


@dataclass(frozen=True, slots=True)
class RequestView:
    """A request as ``RequestStatusDto`` and the task renderer need it."""

    id: str
    kind: RequestKind
    status: RequestStatus
    key_label: str
    created_at: datetime
    executed_at: datetime | None
    result: str | None
    approved_by: list[bytes]
    not_yet_approved_by: list[bytes]
    rejected_by: list[bytes]
    token: bytes | None
    request_json: str
    error_code: int | None = None
    error_message: str | None = None

    @property
    def envelope(self) -> dict[str, Any]:
        return dict(json.loads(self.request_json))

    @property
    def inner(self) -> dict[str, Any]:
        return dict(self.envelope.get(KINDS[self.kind].envelope) or {})


#: Runs a request's operation: (label, inner request object) → the ``result`` string.
Executor = Callable[[str, dict[str, Any]], str]
#: Checks a request before it is stored: (label, inner request object) → None or a TsbError.
Validator = Callable[[str, dict[str, Any]], None]


def utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def b64(value: Any, field_name: str) -> bytes:
    """A base64 field of a stored request (validated at the wire already)."""
    if value is None:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise errors.ValidationFailed(f"'{field_name}' must be base64") from None


def block_payload(label: str) -> bytes:
    """The token payload of block and unblock (GAP decision: the UTF-8 key label)."""
    return label.encode("utf-8")


class RequestService:
    """The SKA requests of one partition."""

    def __init__(self, *, partition_name: str, repository: RequestRepository, keys: KeyService,
                 signing: SigningService, timestamps: TimestampService, clock: Clock, results: ResultSealer,
                 stale_after: float = 300.0) -> None:
        self.partition_name = partition_name
        self.results = results
        self.repository = repository
        self.keys = keys
        self.signing = signing
        self.timestamps = timestamps
        self.clock = clock
        self.stale_after = stale_after
        self.executors: dict[RequestKind, Executor] = {
            RequestKind.BLOCK: lambda label, _inner: self._set_blocked(label, True),
            RequestKind.UNBLOCK: lambda label, _inner: self._set_blocked(label, False),
            RequestKind.MODIFY: self._execute_modify,
        }
        self.validators: dict[RequestKind, Validator] = {RequestKind.SIGN: self._validate_sign}
        #: the scheduler's audit of one request (by id); set by the wiring when the audit log is on
        self.scheduler_audit: Callable[[str], SkaAudit | None] = lambda _request_id: None

    def register(self, kind: RequestKind, executor: Executor, validator: Validator | None = None) -> None:
        """Add the operation of a request kind (decrypt, unwrap, certificates …)."""
        self.executors[kind] = executor
        if validator is not None:
            self.validators[kind] = validator

    def supports(self, kind: RequestKind) -> bool:
        return kind in self.executors

    def now(self) -> datetime:
        return self.clock.now().astimezone(UTC)

    # -- creation -----------------------------------------------------------------------------------

    def submit(self, submission: Submission, audit: SkaAudit | None = None) -> RequestView:
        """Create a request (or run it at once); recorded in ``audit`` as ``request<Kind>``."""
        request_id = str(uuid.uuid4())
        return run_audited(audit, f"request{audit_name(submission.kind)}", submission.label, request_id,
                           lambda: self._submit(submission, request_id, audit))

    def _submit(self, submission: Submission, request_id: str, audit: SkaAudit | None) -> RequestView:
        kind, label = submission.kind, submission.label
        spec = KINDS[kind]
        if kind not in self.executors:
            raise errors.UnsupportedOperation(f"asynchronous {spec.envelope} is not supported by this hsmgate version")
        master = label
        if spec.operation is Operation.USE:  # a derived key <master>/<path>: the master's policy applies
            master = check_key_name(label).master
        else:
            check_label(label, f"{spec.envelope}.{spec.key_field}")
        self.refuse_internal(kind, label, master)
        if len(submission.payload) > MAX_TOKEN_PAYLOAD:
            raise errors.InvalidPayload(f"the payload of an SKA request must be at most {MAX_TOKEN_PAYLOAD} bytes")
        key_info(self.keys.partition, label)  # 650 for a missing key (or master)
        validator = self.validators.get(kind)
        if validator is not None:
            validator(label, submission.inner)
        policy = self.keys.ska_policy(master)
        if policy is None:
            if spec.operation is not Operation.USE:
                raise errors.OperationForbiddenForKey(
                    f"key '{label}' has no policy (not an SKA key): it cannot be blocked, unblocked or modified")
            return self._run_now(submission, None, request_id, audit)
        if spec.operation is Operation.USE and policy.blocked:
            raise errors.OperationForbiddenForKey(f"key '{label}' is blocked; unblock it first (/v1/unblock)")
        rule = policy.rule_for(spec.operation)
        now = self.now().replace(microsecond=0)
        evaluation = evaluate(rule, frozenset(), frozenset(), now, now)
        if evaluation.status is EvaluationStatus.FULFILLED:
            return self._run_now(submission, policy, request_id, audit)
        token = self._token(spec.operation, label, submission.payload, rule, now)
        status = RequestStatus.PENDING
        if evaluation.status is EvaluationStatus.APPROVED_WAITING_TIMELOCK:  # a token without groups
            status = RequestStatus.APPROVED
        row = SkaRequestRow(
            id=request_id, kind=kind.value, key_label=label, status=status.value,
            operation=int(spec.operation), policy=policy_json(policy), request=_dump(submission.envelope),
            token=token, created_at=now, ready_at=evaluation.ready_at, expires_at=evaluation.expires_at,
        )
        tasks = [
            SkaTaskRow(id=str(uuid.uuid4()), kind=kind.value, approver=approval.identity,
                       state=TaskState.OPEN.value, created_at=now, last_fetched_at=now)
            for approval in approvers(rule)
        ]
        self.repository.add(row, tasks)
        log.info("SKA request %s (%s on key %s) created: %s, %d task(s)", row.id, kind, label, status, len(tasks))
        return self.view(row.id)

    def refuse_internal(self, kind: RequestKind, label: str, master: str) -> None:
        """614 for a request on one of hsmgate's own keys: none may be used, blocked, unblocked or
        have its policy replaced by a caller — but the approver backup key takes the restore
        requests hsmgate itself makes (:data:`RequestKind.APPROVER_RESTORE`)."""
        if label in (self.keys.attestation_key_name, self.timestamps.key_name):
            raise errors.OperationForbiddenForKey(
                f"key '{label}' is hsmgate's own (attestations, audit checkpoints, HSM timestamps): it signs "
                "nothing else")
        if kind is not RequestKind.APPROVER_RESTORE and self.keys.is_internal(master):
            raise errors.OperationForbiddenForKey(f"key '{label}' is internal to hsmgate: no caller may use it, "
                                                  "block or unblock it or change its policy")

    def _token(self, operation: Operation, label: str, payload: bytes, rule: Rule | None, now: datetime) -> bytes:
        if is_time_less(rule):
            return ApprovalToBeSigned.time_less(operation, payload).encode()
        stamp, signature = self.timestamps.stamp(now, payload, operation.payload_tag)
        return ApprovalToBeSigned.timed(operation, label, stamp, signature).encode()

    def _run_now(self, submission: Submission, policy: Policy | None, request_id: str,
                 audit: SkaAudit | None) -> RequestView:
        """Execute a request that needs no approval; store it EXECUTED. Errors are raised."""
        spec = KINDS[submission.kind]
        result = run_audited(audit, f"execute{audit_name(submission.kind)}", submission.label, request_id,
                             lambda: self._invoke(submission.kind, submission.label, submission.inner))
        now = self.now().replace(microsecond=0)
        row = SkaRequestRow(
            id=request_id, kind=submission.kind.value, key_label=submission.label,
            status=RequestStatus.EXECUTED.value, operation=int(spec.operation),
            policy=None if policy is None else policy_json(policy), request=_dump(submission.envelope),
            token=None, created_at=now, executed_at=now, result=self._seal(request_id, submission.kind, result),
        )
        self.repository.add(row, [])
        return self.view(row.id)

    # -- evaluation and execution -------------------------------------------------------------------

    def rule_of(self, row: SkaRequestRow) -> Rule | None:
        if row.policy is None:
            return None
        return self.keys.resolved(load_policy(row.policy)).rule_for(Operation(row.operation))

    def advance(self, request_id: str, audit: SkaAudit | None = None) -> bool:
        """Evaluate a live request and move it on; True when this call executed it. An execution,
        expiry or final rejection is recorded in ``audit``."""
        row = self.repository.get(request_id)
        if row is None or row.status not in LIVE:
            return False
        tasks = self.repository.tasks_of(request_id)
        approved = frozenset(t.approver for t in tasks if t.state == TaskState.APPROVED.value)
        rejected = frozenset(t.approver for t in tasks if t.state == TaskState.REJECTED.value)
        created = utc(row.created_at)
        assert created is not None
        evaluation = evaluate(self.rule_of(row), approved, rejected, created, self.now())
        status = evaluation.status
        if status is EvaluationStatus.FULFILLED:
            return self._execute(row, audit)
        if status is EvaluationStatus.APPROVED_WAITING_TIMELOCK:
            if self.repository.transition(request_id, LIVE, RequestStatus.APPROVED.value,
                                          ready_at=evaluation.ready_at, expires_at=evaluation.expires_at) \
                    and row.status == RequestStatus.PENDING.value:
                log.info("SKA request %s approved; executes at %s", request_id, evaluation.ready_at)
        elif status is EvaluationStatus.PENDING:  # also an APPROVED one whose approvals no longer
            # count (their approver was deleted, docs/approvers.md): back to PENDING, out of the scheduler's due list
            self.repository.transition(request_id, LIVE, RequestStatus.PENDING.value, expires_at=evaluation.expires_at)
        elif status in (EvaluationStatus.EXPIRED, EvaluationStatus.REJECTED):
            final = RequestStatus.EXPIRED if status is EvaluationStatus.EXPIRED else RequestStatus.REJECTED
            if self.repository.transition(request_id, LIVE, final.value):
                log.info("SKA request %s: %s", request_id, final.value)
                operation = "expireRequest" if final is RequestStatus.EXPIRED else "rejectRequest"
                note(audit, operation, row.key_label, request_id)
        return False

    def _execute(self, row: SkaRequestRow, audit: SkaAudit | None = None) -> bool:
        """Claim and run a fulfilled request; False when another caller claimed it first. The
        execution is recorded before its result is stored: a record that cannot be written (with
        fail-closed on) leaves the request FAILED with 703 and the result discarded."""
        if not self.repository.transition(row.id, LIVE, RequestStatus.EXECUTING.value,
                                          claimed_at=datetime.now(UTC)):
            return False
        kind = RequestKind(row.kind)
        inner = dict(json.loads(row.request).get(KINDS[kind].envelope) or {})
        executed = self.now().replace(microsecond=0)
        try:
            result = run_audited(audit, f"execute{audit_name(kind)}", row.key_label, row.id,
                                 lambda: self._invoke(kind, row.key_label, inner))
        except TsbError as exc:
            log.warning("SKA request %s failed: %s %s", row.id, exc.code, exc.message)
            self.repository.transition(row.id, (RequestStatus.EXECUTING.value,), RequestStatus.FAILED.value,
                                       executed_at=executed, error_code=exc.code, error_message=exc.message)
            return True
        except Exception:
            log.exception("SKA request %s failed unexpectedly", row.id)
            self.repository.transition(row.id, (RequestStatus.EXECUTING.value,), RequestStatus.FAILED.value,
                                       executed_at=executed, error_code=1, error_message="internal error")
            return True
        self.repository.transition(row.id, (RequestStatus.EXECUTING.value,), RequestStatus.EXECUTED.value,
                                   executed_at=executed, result=self._seal(row.id, kind, result))
        log.info("SKA request %s (%s on key %s) executed", row.id, kind, row.key_label)
        return True

    def _seal(self, request_id: str, kind: RequestKind, result: str) -> str:
        return self.results.seal(result, partition=self.partition_name, request_id=request_id, kind=kind.value)

    def _invoke(self, kind: RequestKind, label: str, inner: dict[str, Any]) -> str:
        executor = self.executors.get(kind)
        if executor is None:
            raise errors.UnsupportedOperation(f"{KINDS[kind].envelope} is not supported by this hsmgate version")
        if KINDS[kind].operation is Operation.USE:
            with authorized(self.partition_name, label):
                return executor(label, inner)
        return executor(label, inner)

    def execute_synchronously(self, kind: RequestKind, label: str, inner: dict[str, Any]) -> str:
        """Run an operation whose approvals were checked already (``signedApprovals``)."""
        return self._invoke(kind, label, inner)

    def run_due(self) -> int:
        """One scheduler pass: execute APPROVED requests whose timelock passed, expire timed-out
        ones, fail executions a dead process left behind. Returns the requests executed here."""
        executed = 0
        for request_id in self.repository.due(self.now()):
            try:
                executed += self.advance(request_id, self.scheduler_audit(request_id))
            except Exception:  # one bad request must not stop the others
                log.exception("SKA scheduler: request %s", request_id)
        self._erase_old_results()
        stale = datetime.now(UTC) - timedelta(seconds=self.stale_after)
        for request_id in self.repository.stale_executing(stale):
            if self.repository.transition(request_id, (RequestStatus.EXECUTING.value,), RequestStatus.FAILED.value,
                                          error_code=1, error_message="execution was interrupted"):
                log.warning("SKA request %s: execution interrupted (process died?); marked FAILED", request_id)
                row = self.repository.get(request_id)
                note(self.scheduler_audit(request_id), "failRequest", row.key_label if row else None,
                     request_id, "error", 1)
        return executed

    def _erase_old_results(self) -> None:
        erased = self.repository.erase_results_before(self.now() - self.results.retention)
        if erased:
            log.info("SKA requests of partition %s: %d result(s) past their retention erased", self.partition_name,
                     erased)

    def maintain_results(self) -> None:
        """At start-up: seal results an older hsmgate stored in plaintext, erase those past their
        retention (:mod:`hsmgate.domain.ska.results`)."""
        for request_id, kind, stored in self.repository.results_not_starting_with(SEALED_PREFIX):
            sealed = self._seal(request_id, RequestKind(kind), stored)
            if self.repository.replace_result(request_id, stored, sealed):
                log.info("SKA request %s: its plaintext result is now sealed", request_id)
        self._erase_old_results()

    # -- queries and cancellation -------------------------------------------------------------------

    def view(self, request_id: str) -> RequestView:
        row = self.repository.get(request_id)
        if row is None:
            raise errors.TsbError(f"request '{request_id}' does not exist", code=651)
        return self._view(row, self.repository.tasks_of(request_id), self._result(row))

    def find(self, statuses: Iterable[str] | None = None) -> list[RequestView]:
        wanted = None
        if statuses is not None:
            wanted = set(statuses)
            if RequestStatus.APPROVED.value in wanted:
                wanted.add(RequestStatus.EXECUTING.value)
        rows = self.repository.find(wanted)
        tasks = self.repository.tasks_of_many([row.id for row in rows])
        return [self._view(row, tasks[row.id], self._listed_result(row)) for row in rows]

    def _result(self, row: SkaRequestRow) -> str | None:
        """The opened result of ``row``; ResultUnreadable when it does not open."""
        return self.results.open(row.result, partition=self.partition_name, request_id=row.id, kind=row.kind)

    def _listed_result(self, row: SkaRequestRow) -> str | None:
        """In a list, a result that does not open is left out (and logged) rather than failing the list."""
        try:
            return self._result(row)
        except ResultUnreadable as exc:
            log.error("SKA request %s: %s", row.id, exc.message)
            return None

    @staticmethod
    def _view(row: SkaRequestRow, tasks: list[SkaTaskRow], result: str | None) -> RequestView:
        created = utc(row.created_at)
        assert created is not None
        return RequestView(
            id=row.id, kind=RequestKind(row.kind), status=RequestStatus(row.status), key_label=row.key_label,
            created_at=created, executed_at=utc(row.executed_at), result=result,
            approved_by=[t.approver for t in tasks if t.state == TaskState.APPROVED.value],
            not_yet_approved_by=[t.approver for t in tasks if t.state == TaskState.OPEN.value],
            rejected_by=[t.approver for t in tasks if t.state == TaskState.REJECTED.value],
            token=row.token, request_json=row.request, error_code=row.error_code, error_message=row.error_message,
        )

    def cancel(self, request_id: str, audit: SkaAudit | None = None) -> None:
        """``DELETE /v1/request/{id}``: PENDING/APPROVED → CANCELLED (idempotent when cancelled),
        recorded in ``audit`` as ``cancelRequest``; on an EXECUTED request its result is erased
        (idempotent too), recorded as ``eraseRequestResult``."""
        row = self.repository.get(request_id)
        executed = row is not None and row.status == RequestStatus.EXECUTED.value
        run_audited(audit, "eraseRequestResult" if executed else "cancelRequest", row.key_label if row else None,
                    request_id, lambda: self._cancel(request_id))

    def _cancel(self, request_id: str) -> None:
        row = self.repository.get(request_id)
        if row is None:
            raise errors.TsbError(f"request '{request_id}' does not exist", code=651)
        if self.repository.transition(request_id, LIVE, RequestStatus.CANCELLED.value):
            log.info("SKA request %s cancelled", request_id)
            return
        row = self.repository.get(request_id)
        if row is not None and row.status == RequestStatus.EXECUTED.value:
            if self.repository.erase_result(request_id):
                log.info("SKA request %s: result erased", request_id)
            return
        if row is not None and row.status != RequestStatus.CANCELLED.value:
            raise errors.ValidationFailed(
                f"request '{request_id}' is {RequestStatus(row.status).wire}: only PENDING or APPROVED requests "
                "can be cancelled (and EXECUTED ones have their result erased)")

    def cancel_for_key(self, label: str) -> None:
        """A key was deleted: its live requests are CANCELLED."""
        for request_id in self.repository.live_ids_of_key(label):
            if self.repository.transition(request_id, LIVE, RequestStatus.CANCELLED.value):
                log.info("SKA request %s cancelled: key %s was deleted", request_id, label)

    # -- the operations -----------------------------------------------------------------------------

    def _validate_sign(self, label: str, inner: dict[str, Any]) -> None:
        payload = b64(inner.get("payload"), "signRequest.payload")
        if not payload:
            raise errors.ValidationFailed("'signRequest.payload' must not be empty")
        context = b64(inner.get("context"), "signRequest.context") or None
        # 607 / 612 / 611 before approvals are asked for
        self.signing.check(label=label, algorithm=str(inner.get("signatureAlgorithm")), payload=payload,
                           context=context)

    def _current_policy(self, label: str) -> Policy:
        policy = self.keys.ska_policy(label)
        if policy is None:
            raise errors.KeyNotFound(f"key '{label}' not found (or it has no policy any more)")
        return policy

    def _set_blocked(self, label: str, blocked: bool) -> str:
        self.keys.set_policy(label, replace(self._current_policy(label), blocked=blocked))
        log.info("key %s %s", label, "blocked" if blocked else "unblocked")
        return "true"

    def _execute_modify(self, label: str, inner: dict[str, Any]) -> str:
        current = self._current_policy(label)
        new = Policy.from_wire(inner.get("policy"), field="modifyRequest.policy", key_status=False)
        self.keys.set_policy(label, replace(new, blocked=current.blocked))
        log.info("key %s: policy modified", label)
        return "true"


def _dump(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


class RequestScheduler:
    """A daemon thread per process running :meth:`RequestService.run_due` of every partition
    every ``interval`` seconds (the TSB's ``HsmRequestsTimerService``)."""

    def __init__(self, services: Callable[[], Iterable[RequestService]], interval: float) -> None:
        self._services = services
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def run_once(self) -> int:
        executed = 0
        for service in list(self._services()):
            try:
                executed += service.run_due()
            except Exception as exc:
                if state_error(exc) is None:
                    log.exception("SKA scheduler pass failed for partition %s", service.partition_name)
                else:  # a passing condition, not a bug: one line, the next pass tries again
                    log.warning("SKA scheduler pass skipped for partition %s: the state database is unavailable "
                                "(%s)", service.partition_name, " ".join(str(exc).split())[:200])
        self.passes += 1
        return executed

    def start(self) -> None:
        """Seal and expire stored results (:meth:`RequestService.maintain_results`), then run a
        pass every ``interval`` seconds in a daemon thread."""
        if self._thread is not None:
            return
        for service in list(self._services()):
            try:
                service.maintain_results()
            except Exception:
                log.exception("SKA results of partition %s could not be sealed or expired", service.partition_name)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="hsmgate-ska-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
