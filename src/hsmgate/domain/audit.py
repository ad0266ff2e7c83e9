"""The tamper-evident audit log: one hash-chained record per key operation, signed checkpoints,
and the verification of both.

Record. ``time, partition, principal, auth_method, operation, key_label, request_id, outcome,
error_code`` — never payloads, signatures, secrets or key material. ``outcome`` is ``ok``,
``error`` (with the TSB ``error_code``) or ``started`` (see ordering below). Records of SKA
requests (creation, approval, rejection, cancellation, execution, expiry) also carry
``ska_request_id``, the request's id, hashed only when present so older records keep their hash;
the scheduler's records name the principal ``scheduler``.

Chain. Each partition has its own chain. A record's ``hash`` is SHA-256 (hex) over the canonical
JSON (keys sorted, no spaces, UTF-8) of its fields *including* ``seq`` and ``prev_hash``, the hash of
the record before it (64 zeros for the first). Changing a record changes its hash; removing or
reordering records breaks a ``prev_hash`` link or the ``seq`` sequence.

Checkpoints. Every HSMGATE_AUDIT_CHECKPOINT_INTERVAL records, at shutdown and on ``hsmgate audit
checkpoint``, the partition's attestation key signs (RSA PKCS#1 v1.5, SHA-256) the canonical JSON
``{"type":"hsmgate-audit-checkpoint","partition","seq","hash","time"}``. Someone able to rewrite the
database can recompute a whole chain; they cannot sign for the HSM, so the rewrite shows at the
next checkpoint. Records after the last checkpoint are protected by the chain only.

Ordering and fail-closed (HSMGATE_AUDIT_FAIL_CLOSED, default on):

* Operations that change nothing (sign, verify, describe, list, random) run first; their record,
  with the outcome, is written before the result is returned. If it cannot be written the caller
  gets 503 / 703 instead of the result: a signature is never handed out unaudited. One INSERT.
* Operations that change the partition (create, delete) write a ``started`` record first — if
  that fails nothing is executed — then run, then write the outcome record. Two INSERTs, for the
  rare administrative calls only.

With fail-closed off, a failed write is logged and the operation proceeds.

Waiting. "Written" means committed: :meth:`AuditTrail.record` returns once its record is durable.
Inside :func:`deferred_records` (``api/execution.py`` runs async routes' operations in one) the
outcome records are only submitted; the block's owner waits for them (an event loop without
holding a thread) before it returns the result, and the block's end waits for whatever it did not.
Records are group-committed by the store (``store/audit.py``); a record's ``time`` is taken when
its place in the chain is, so times follow ``seq``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hsmgate.domain.attestation import ATTESTATION_MECHANISM
from hsmgate.domain.errors import TsbError
from hsmgate.domain.hsm_errors import translated
from hsmgate.hsm.base import Partition
from hsmgate.store.audit import GENESIS_HASH, AuditRepository, Head

log = logging.getLogger("hsmgate.audit")
T = TypeVar("T")

OK, ERROR, STARTED = "ok", "error", "started"
#: The fields a record's hash covers, in the order of the export.
HASHED_FIELDS = ("seq", "time", "partition", "principal", "auth_method", "operation", "key_label",
                 "request_id", "outcome", "error_code", "prev_hash")
#: Fields a record's hash covers only when they are not null (added after the first records).
OPTIONAL_HASHED_FIELDS = ("ska_request_id",)
CHECKPOINT_TYPE = "hsmgate-audit-checkpoint"


class AuditUnavailable(TsbError):
    """The audit record could not be written and fail-closed is on: the operation is refused."""

    code = 703

    def __init__(self, message: str = "the audit record could not be written; the operation was refused") -> None:
        super().__init__(message, status=503)


def canonical_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def hashed_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a record's hash covers: :data:`HASHED_FIELDS`, and the optional ones when set."""
    values = {name: record[name] for name in HASHED_FIELDS}
    values.update({name: record[name] for name in OPTIONAL_HASHED_FIELDS if record.get(name) is not None})
    return values


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the record's hashed fields."""
    return hashlib.sha256(canonical_json(hashed_values(record))).hexdigest()


def checkpoint_message(*, partition: str, seq: int, hash: str, time: str) -> bytes:
    return canonical_json({"type": CHECKPOINT_TYPE, "partition": partition, "seq": seq, "hash": hash, "time": time})


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, on which partition, in which request."""

    principal: str
    auth_method: str
    partition: str
    request_id: str


@dataclass(frozen=True, slots=True)
class AttestationSigner:
    """Signs checkpoints of one partition with its attestation key."""

    partition: Partition
    key_name: str

    def sign(self, message: bytes) -> bytes:
        with translated():
            return self.partition.sign(self.key_name, ATTESTATION_MECHANISM, message)

    def public_key_der(self) -> bytes:
        with translated():
            public = self.partition.get(self.key_name).public_key
        if public is None:
            raise TsbError(f"attestation key '{self.key_name}' has no public key", code=701)
        return public


class AuditTrail:
    """Appends records, signs checkpoints. Thread-safe; the repository serialises each chain."""

    def __init__(self, repository: AuditRepository, *, fail_closed: bool = True, checkpoint_interval: int = 100,
                 clock: Callable[[], str] = now_text) -> None:
        self.repository = repository
        self.fail_closed = fail_closed
        self.checkpoint_interval = checkpoint_interval
        self.signers: dict[str, AttestationSigner] = {}
        self._clock = clock
        repository.add_listener(self._checkpoint_due)

    def record(self, actor: Actor, operation: str, key_label: str | None, outcome: str,
               error_code: int | None = None, *, ska_request_id: str | None = None) -> None:
        """Append a record and wait until it is committed; raises AuditUnavailable when it cannot
        be written and fail-closed is on."""
        pending = self.submit(actor, operation, key_label, outcome, error_code, ska_request_id=ska_request_id)
        self.repository.wait(pending.future)
        pending.check()

    def submit(self, actor: Actor, operation: str, key_label: str | None, outcome: str,
               error_code: int | None = None, *, ska_request_id: str | None = None) -> PendingRecord:
        """Queue a record without waiting for it (see :func:`deferred_records`)."""
        fields = {"principal": actor.principal, "auth_method": actor.auth_method, "operation": operation,
                  "key_label": key_label, "request_id": actor.request_id, "outcome": outcome,
                  "error_code": error_code, "ska_request_id": ska_request_id}
        partition = actor.partition

        def build(seq: int, prev_hash: str) -> tuple[dict[str, Any], str]:
            values = {**fields, "time": self._clock()}  # taken under the chain lock: times follow seq
            return values, record_hash({**values, "partition": partition, "seq": seq, "prev_hash": prev_hash})

        what = f"{operation} {key_label} in {partition}, request {actor.request_id}"
        return PendingRecord(self, self.repository.submit(partition, build), what)

    def _checkpoint_due(self, partition: str, rows: list[dict[str, Any]]) -> None:
        """After a committed group: sign each of its records that ends a checkpoint interval."""
        for row in rows:
            if row["seq"] % self.checkpoint_interval == 0:
                self.checkpoint(partition, Head(row["seq"], row["hash"]))

    def checkpoint(self, partition: str, head: Head | None = None) -> dict[str, Any] | None:
        """Sign ``head`` (default: the chain's current head) with the partition's attestation key.
        Best effort: a failure is logged, the records stay protected by the chain."""
        signer = self.signers.get(partition)
        try:
            head = head or self.repository.head(partition)
            if head.seq == 0 or signer is None:
                return None
            values = {"partition": partition, "seq": head.seq, "hash": head.hash, "time": self._clock(),
                      "key_name": signer.key_name}
            message = checkpoint_message(partition=partition, seq=head.seq, hash=head.hash, time=values["time"])
            values["signature"] = base64.b64encode(signer.sign(message)).decode()
            self.repository.add_checkpoint(values)
            return values
        except Exception as exc:  # noqa: BLE001 - best effort: the chain still protects the records
            log.error("audit checkpoint of partition %s not signed: %s", partition, exc)
            return None

    def checkpoint_if_moved(self, partition: str) -> dict[str, Any] | None:
        """Sign the head unless it is already covered by a checkpoint (used at shutdown)."""
        try:
            head = self.repository.head(partition)
            if head.seq <= self.repository.last_checkpoint_seq(partition):
                return None
        except Exception as exc:  # noqa: BLE001 - best effort, as above
            log.error("audit checkpoint of partition %s not signed: %s", partition, exc)
            return None
        return self.checkpoint(partition, head)


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """A submitted record and the future of its commit."""

    trail: AuditTrail
    future: Future[dict[str, Any]]
    what: str

    def check(self) -> None:
        """After the future is settled: nothing if the record is written; else log, and raise
        AuditUnavailable when fail-closed is on."""
        error = self.future.exception(timeout=0)
        if error is None:
            return
        log.error("audit record not written (%s): %s", self.what, error)
        if self.trail.fail_closed:
            raise AuditUnavailable() from None


class PendingRecords:
    """The outcome records of one operation run inside :func:`deferred_records`: submitted, not
    yet known to be committed. Whoever returns the operation's result must first have them
    written and settled: :meth:`wait` (blocking), or :meth:`write` / :meth:`write_soon` then wait
    for :attr:`futures` and call :meth:`check` (``api/execution.py`` awaits them)."""

    def __init__(self) -> None:
        self._records: list[PendingRecord] = []

    def __bool__(self) -> bool:
        return bool(self._records)

    def add(self, record: PendingRecord) -> None:
        self._records.append(record)

    @property
    def futures(self) -> list[Future[dict[str, Any]]]:
        return [record.future for record in self._records]

    def _repositories(self) -> list[AuditRepository]:
        return list({id(r.trail.repository): r.trail.repository for r in self._records}.values())

    @property
    def local(self) -> bool:
        """True when every record goes to a local database (SQLite), whose writes are short
        enough for :meth:`write` on an event loop."""
        return all(r.trail.repository.local for r in self._records)

    def write(self) -> None:
        """Write every queued record now, in this thread."""
        for repository in self._repositories():
            repository.write()

    def write_soon(self) -> None:
        """Have the repositories' writer threads write them (for callers that must not block)."""
        for repository in self._repositories():
            repository.write_soon()

    def wait(self) -> None:
        """Block until every record is settled, then :meth:`check`."""
        for record in self._records:
            record.trail.repository.wait(record.future)
        self.check()

    def check(self) -> None:
        """After every future is settled: raise AuditUnavailable if a fail-closed record is not
        written (each failure logged). The records are settled afterwards either way."""
        records, self._records = self._records, []
        failure: AuditUnavailable | None = None
        for record in records:
            try:
                record.check()
            except AuditUnavailable as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


_deferred: ContextVar[PendingRecords | None] = ContextVar("hsmgate_audit_deferred", default=None)


class deferred_records:
    """Within the block, the outcome records of :meth:`RequestAudit.run` (and of refused key
    passwords) are submitted without waiting for their commit and collected in the yielded
    :class:`PendingRecords`, so that a caller on an event loop can wait for them without holding a
    thread. ``started`` records are still waited for. Whatever is unsettled at the end of the block
    is waited for there (blocking), so no result leaves before its record is committed."""

    __slots__ = ("_pending", "_token")

    def __enter__(self) -> PendingRecords:
        self._pending = PendingRecords()
        self._token = _deferred.set(self._pending)
        return self._pending

    def __exit__(self, *_: object) -> None:
        _deferred.reset(self._token)
        if self._pending:
            self._pending.wait()


# -- recording the calls of one request ---------------------------------------------------------


class RequestAudit:
    """The audit of one caller's request: runs domain calls and records each one. The key-use
    gate (``domain/key_use.py``), key administration (``domain/key_admin.py``) and the SKA request
    lifecycle record through it; nothing is recorded when the trail is None
    (HSMGATE_AUDIT_ENABLED=false)."""

    __slots__ = ("actor", "trail")

    def __init__(self, trail: AuditTrail | None, actor: Actor) -> None:
        self.trail = trail
        self.actor = actor

    def record(self, operation: str, key_label: str | None, outcome: str, error_code: int | None = None, *,
               ska_request_id: str | None = None) -> None:
        """Append a record and wait until it is committed."""
        if self.trail is not None:
            self.trail.record(self.actor, operation, key_label, outcome, error_code,
                              ska_request_id=ska_request_id)

    def record_outcome(self, operation: str, key_label: str | None, outcome: str, error_code: int | None = None, *,
                       ska_request_id: str | None = None) -> None:
        """Append the record of an outcome about to be returned: inside :func:`deferred_records`
        it is only submitted (the block's owner waits for it), elsewhere as :meth:`record`."""
        pending = _deferred.get()
        if pending is None:
            self.record(operation, key_label, outcome, error_code, ska_request_id=ska_request_id)
        elif self.trail is not None:
            pending.add(self.trail.submit(self.actor, operation, key_label, outcome, error_code,
                                          ska_request_id=ska_request_id))

    def run(self, operation: str, key_label: str | None, call: Callable[[], T], *,
            ska_request_id: str | None = None) -> T:
        """Run a call that changes nothing; record its outcome before its result is returned."""
        try:
            result = call()
        except TsbError as exc:
            self.record_outcome(operation, key_label, ERROR, exc.code, ska_request_id=ska_request_id)
            raise
        except Exception:
            self.record_outcome(operation, key_label, ERROR, 1, ska_request_id=ska_request_id)
            raise
        self.record_outcome(operation, key_label, OK, ska_request_id=ska_request_id)
        return result

    def mutating(self, operation: str, key_label: str | None, call: Callable[[], T], *,
                 ska_request_id: str | None = None) -> T:
        """Record the intent (refusing the call if that fails), run it, record its outcome."""
        self.record(operation, key_label, STARTED, ska_request_id=ska_request_id)
        return self.run(operation, key_label, call, ska_request_id=ska_request_id)


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    partition: str
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"record {self.seq}" if self.seq is not None else "chain"
        return f"partition {self.partition}: {where}: {self.message}"


@dataclass(slots=True)
class Report:
    partition: str
    records: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    checkpoints_verified: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_signature(public_key_der: bytes, message: bytes, signature_b64: str) -> bool:
    """RSA PKCS#1 v1.5 / SHA-256, as the attestation key signs."""
    try:
        public_key = serialization.load_der_public_key(public_key_der)
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        return False
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def verify_chain(partition: str, records: Iterable[Mapping[str, Any]], checkpoints: Iterable[Mapping[str, Any]],
                 *, public_key_der: bytes | None, head: Head | None = None) -> Report:
    """Check one partition's records (in the order given) and checkpoints; every finding names the record."""
    report = Report(partition)
    problem = report.problems.append
    by_seq: dict[int, Mapping[str, Any]] = {}
    seq_of_hash: dict[str, int] = {}
    ordered: list[Mapping[str, Any]] = []
    for record in records:
        ordered.append(record)
        seq = record["seq"]
        if seq in by_seq:
            problem(Problem(partition, seq, "appears twice"))
        by_seq[seq] = record
        seq_of_hash.setdefault(record["hash"], seq)
    report.records = len(ordered)
    report.last_seq = max(by_seq, default=0)
    for seq in range(1, report.last_seq + 1):
        if seq not in by_seq:
            problem(Problem(partition, seq, "is missing (removed)"))

    previous: Mapping[str, Any] | None = None
    for record in ordered:
        seq = record["seq"]
        if previous is not None and seq < previous["seq"]:
            problem(Problem(partition, seq, f"comes after record {previous['seq']}: records are out of order (reordered)"))
        if record_hash(record) != record["hash"]:
            problem(Problem(partition, seq, "was changed: its hash does not match its content"))
        expected_prev = previous["hash"] if previous is not None else GENESIS_HASH
        adjacent = (previous is None and seq == 1) or (previous is not None and seq == previous["seq"] + 1)
        if adjacent and record["prev_hash"] != expected_prev:
            origin = seq_of_hash.get(record["prev_hash"])
            if origin is not None:
                problem(Problem(partition, seq, f"was chained after record {origin}, not after record {seq - 1}: "
                                                "records were reordered"))
            else:
                problem(Problem(partition, seq, f"does not link to record {seq - 1} (a record before it was "
                                                "changed or replaced)"))
        previous = record

    if head is not None and (head.seq, head.hash) != (report.last_seq, previous["hash"] if previous else GENESIS_HASH):
        problem(Problem(partition, None, f"the chain head is record {head.seq} but the last record is "
                                         f"{report.last_seq} (records at the end were removed or changed)"))

    for checkpoint in checkpoints:
        report.checkpoints += 1
        seq = checkpoint["seq"]
        message = checkpoint_message(partition=partition, seq=seq, hash=checkpoint["hash"], time=checkpoint["time"])
        if public_key_der is not None:
            if not verify_signature(public_key_der, message, checkpoint["signature"]):
                problem(Problem(partition, seq, "its checkpoint signature does not verify"))
                continue
            report.checkpoints_verified += 1
        record = by_seq.get(seq)
        if record is None:
            if seq > report.last_seq:  # (a gap inside the chain is reported above)
                problem(Problem(partition, seq, "is signed by a checkpoint but the chain ends before it "
                                                "(records at the end were removed)"))
        elif record["hash"] != checkpoint["hash"] or record_hash(record) != checkpoint["hash"]:
            problem(Problem(partition, seq, "does not match its signed checkpoint (the chain was rewritten)"))
    if public_key_der is None and report.checkpoints:
        report.notes.append(f"partition {partition}: checkpoint signatures not checked (no attestation public key)")
    # A duplicated problem line helps nobody.
    unique: dict[str, Problem] = {str(p): p for p in report.problems}
    report.problems = list(unique.values())
    return report
