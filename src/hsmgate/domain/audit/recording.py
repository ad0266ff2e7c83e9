"""Recording: the audit trail that appends records and signs checkpoints, the records an
operation submits while it runs (:func:`deferred_records`), and :class:`RequestAudit`, through
which one caller's request records (see the package text for ordering and fail-closed)."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from hsmgate.domain.attestation import ATTESTATION_MECHANISM
from hsmgate.domain.audit.chain import ERROR, OK, STARTED, checkpoint_message, now_text, record_hash
from hsmgate.domain.errors import TsbError
from hsmgate.domain.hsm_errors import translated
from hsmgate.hsm.base import Partition
from hsmgate.store.audit import AuditRepository, Head, PendingCommits
from hsmgate.store.audit_anchors import AnchorSink

log = logging.getLogger("hsmgate.audit")
T = TypeVar("T")


class AuditUnavailable(TsbError):
    """The audit record could not be written and fail-closed is on: the operation is refused."""

    code = 703

    def __init__(self, message: str = "the audit record could not be written; the operation was refused") -> None:
        super().__init__(message, status=503)


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


#: Checkpoints a partition may owe at once (:meth:`AuditTrail.settle_owed`); beyond, the oldest are given up.
MAX_OWED = 1000
#: Seconds between two attempts to settle owed checkpoints after one failed (the HSM or database still away).
OWED_RETRY_INTERVAL = 1.0


class AuditTrail:
    """Appends records, signs checkpoints and anchors them outside the database (``anchors``:
    ``store/audit_anchors.py``). Thread-safe; the repository serialises each chain.

    A checkpoint due at a record (every ``checkpoint_interval``) that could not be signed or stored
    (the HSM or the database away), or whose record's commit failed with an unknown outcome (the
    connection lost during COMMIT: the record may be in the chain), is *owed*: it is signed after a
    later group of the partition has committed, and at shutdown, once its record is in the chain and
    has no checkpoint yet. Else ``audit verify`` would find a stretch without a checkpoint, as after
    a deleted one."""

    def __init__(self, repository: AuditRepository, *, fail_closed: bool = True, checkpoint_interval: int = 100,
                 clock: Callable[[], str] = now_text, anchors: Sequence[AnchorSink] = ()) -> None:
        self.repository = repository
        self.fail_closed = fail_closed
        self.checkpoint_interval = checkpoint_interval
        self.signers: dict[str, AttestationSigner] = {}
        self.anchors = tuple(anchors)
        self._clock = clock
        self._owed: dict[str, set[int]] = {}
        self._owed_lock = threading.Lock()
        self._settle_after: dict[str, float] = {}  # partition -> monotonic time of the next attempt
        repository.add_listener(self._checkpoint_due)
        repository.add_failure_listener(self._maybe_written)

    def close(self) -> None:
        """Write what is still queued, close the repository and the anchor sinks."""
        try:
            self.repository.close()
        finally:
            for sink in self.anchors:
                sink.close()

    def record(self, actor: Actor, operation: str, key_label: str | None, outcome: str,
               error_code: int | None = None, *, ska_request_id: str | None = None,
               items: str | None = None) -> None:
        """Append a record and wait until it is committed; raises AuditUnavailable when it cannot
        be written and fail-closed is on."""
        pending = self.submit(actor, operation, key_label, outcome, error_code, ska_request_id=ska_request_id,
                              items=items)
        self.repository.wait(pending.future)
        pending.check()

    def submit(self, actor: Actor, operation: str, key_label: str | None, outcome: str,
               error_code: int | None = None, *, ska_request_id: str | None = None,
               items: str | None = None) -> PendingRecord:
        """Queue a record without waiting for it (see :func:`deferred_records`). ``items``: the
        signatures it accounts for (``items.py``)."""
        fields = {"principal": actor.principal, "auth_method": actor.auth_method, "operation": operation,
                  "key_label": key_label, "request_id": actor.request_id, "outcome": outcome,
                  "error_code": error_code, "ska_request_id": ska_request_id, "items": items}
        partition = actor.partition

        def build(seq: int, prev_hash: str) -> tuple[dict[str, Any], str]:
            values = {**fields, "time": self._clock()}  # taken under the chain lock: times follow seq
            return values, record_hash({**values, "partition": partition, "seq": seq, "prev_hash": prev_hash})

        what = f"{operation} {key_label} in {partition}, request {actor.request_id}"
        return PendingRecord(self, self.repository.submit(partition, build), what)

    def _checkpoint_due(self, partition: str, rows: list[dict[str, Any]]) -> None:
        """After a committed group: sign each of its records that ends a checkpoint interval (owed
        if that fails), then the checkpoints owed from before."""
        for row in rows:
            due = row["seq"] % self.checkpoint_interval == 0
            if due and self.checkpoint(partition, Head(row["seq"], row["hash"])) is None and partition in self.signers:
                self._owe(partition, [row["seq"]])
                self._settle_after[partition] = time.monotonic() + OWED_RETRY_INTERVAL
        if self._owed.get(partition):
            self.settle_owed(partition)

    def _maybe_written(self, partition: str, seqs: range) -> None:
        """A group's commit failed after its records got ``seqs``: they may be in the chain."""
        interval = self.checkpoint_interval
        first = -(-seqs.start // interval) * interval
        self._owe(partition, range(first, seqs.stop, interval))

    def _owe(self, partition: str, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._owed_lock:
            owed = self._owed.setdefault(partition, set())
            owed.update(seqs)
            if len(owed) > MAX_OWED:
                given_up = sorted(owed)[:len(owed) - MAX_OWED]
                owed.difference_update(given_up)
                log.error("audit checkpoints of partition %s at records %s… given up (more than %d owed)",
                          partition, given_up[:5], MAX_OWED)

    def owed(self, partition: str) -> list[int]:
        """The records whose checkpoints this process owes (see the class text)."""
        with self._owed_lock:
            return sorted(self._owed.get(partition, ()))

    def settle_owed(self, partition: str, *, now: bool = False) -> None:
        """Sign the owed checkpoints of ``partition`` whose records are in the chain without a
        checkpoint; forget those another process (or a later group) has signed. After a failure, not
        again for :data:`OWED_RETRY_INTERVAL` seconds unless ``now``."""
        if not now and time.monotonic() < self._settle_after.get(partition, 0.0):
            return
        for seq in self.owed(partition):
            try:
                if not self.repository.has_checkpoint(partition, seq):
                    digest = self.repository.record_hash(partition, seq)
                    if digest is None:  # not in the chain (yet): its writer will sign it
                        continue
                    if self.checkpoint(partition, Head(seq, digest)) is None:
                        self._settle_after[partition] = time.monotonic() + OWED_RETRY_INTERVAL
                        return
                    log.warning("audit checkpoint of partition %s at record %d signed late", partition, seq)
            except Exception as exc:  # noqa: BLE001 - best effort, as checkpoints are: tried again later
                log.error("audit checkpoint of partition %s at record %d still owed: %s", partition, seq, exc)
                self._settle_after[partition] = time.monotonic() + OWED_RETRY_INTERVAL
                return
            with self._owed_lock:
                self._owed.get(partition, set()).discard(seq)

    def checkpoint(self, partition: str, head: Head | None = None) -> dict[str, Any] | None:
        """Sign ``head`` (default: the chain's current head) with the partition's attestation key,
        store it and, once stored, append it to every anchor sink (a checkpoint another process
        stored first at the same record is that process's to anchor). Best effort: a failure is
        logged, the records stay protected by the chain."""
        signer = self.signers.get(partition)
        try:
            head = head or self.repository.head(partition)
            if head.seq == 0 or signer is None:
                return None
            values = {"partition": partition, "seq": head.seq, "hash": head.hash, "time": self._clock(),
                      "key_name": signer.key_name}
            message = checkpoint_message(partition=partition, seq=head.seq, hash=head.hash, time=values["time"])
            values["signature"] = base64.b64encode(signer.sign(message)).decode()
            if self.repository.add_checkpoint(values):
                self._anchor(values)
            return values
        except Exception as exc:  # noqa: BLE001 - best effort: the chain still protects the records
            log.error("audit checkpoint of partition %s not signed: %s", partition, exc)
            return None

    def _anchor(self, checkpoint: dict[str, Any]) -> None:
        for sink in self.anchors:
            try:
                sink.append(checkpoint)
            except Exception as exc:  # noqa: BLE001 - one sink's failure must not stop the others
                log.error("audit checkpoint of partition %s at record %s not anchored: %s",
                          checkpoint["partition"], checkpoint["seq"], exc)

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
    for :attr:`futures` and call :meth:`check` (``api/execution.py`` awaits them). How they are
    written is the store's (:class:`hsmgate.store.audit.PendingCommits`); what a failed write means
    (fail-closed) is decided here."""

    def __init__(self) -> None:
        self._records: list[PendingRecord] = []
        self._commits = PendingCommits()

    def __bool__(self) -> bool:
        return bool(self._records)

    def add(self, record: PendingRecord) -> None:
        self._records.append(record)
        self._commits.add(record.trail.repository, record.future)

    @property
    def futures(self) -> list[Future[dict[str, Any]]]:
        return self._commits.futures

    @property
    def local(self) -> bool:
        """True when every record goes to a local database (SQLite), whose writes are short
        enough for :meth:`write` on an event loop."""
        return self._commits.local

    def write(self) -> None:
        """Write every queued record now, in this thread."""
        self._commits.write()

    def write_soon(self) -> None:
        """Have the repositories' writer threads write them (for callers that must not block)."""
        self._commits.write_soon()

    def wait(self) -> None:
        """Block until every record is settled, then :meth:`check`."""
        self._commits.wait()
        self.check()

    def check(self) -> None:
        """After every future is settled: raise AuditUnavailable if a fail-closed record is not
        written (each failure logged). The records are settled afterwards either way."""
        records, self._records = self._records, []
        self._commits = PendingCommits()
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
               ska_request_id: str | None = None, items: str | None = None) -> None:
        """Append a record and wait until it is committed."""
        if self.trail is not None:
            self.trail.record(self.actor, operation, key_label, outcome, error_code,
                              ska_request_id=ska_request_id, items=items)

    def record_outcome(self, operation: str, key_label: str | None, outcome: str, error_code: int | None = None, *,
                       ska_request_id: str | None = None, items: str | None = None) -> None:
        """Append the record of an outcome about to be returned: inside :func:`deferred_records`
        it is only submitted (the block's owner waits for it), elsewhere as :meth:`record`."""
        pending = _deferred.get()
        if pending is None:
            self.record(operation, key_label, outcome, error_code, ska_request_id=ska_request_id, items=items)
        elif self.trail is not None:
            pending.add(self.trail.submit(self.actor, operation, key_label, outcome, error_code,
                                          ska_request_id=ska_request_id, items=items))

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
