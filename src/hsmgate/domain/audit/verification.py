"""Verification of a partition's chain, its checkpoints and their anchors outside the database
(``hsmgate audit verify``): every finding names the record.

What is checked, per partition:

* the chain: every record's hash, its link to the record before, no gap, the head row;
* each checkpoint: its signature by the attestation key, and that it names a record of the chain
  with that record's hash;
* with the checkpoint interval N: a signed checkpoint at least every N records, from the start of
  the chain to its end (a deleted checkpoint leaves a longer stretch);
* with the anchors (``store/audit_anchors.py``): each anchored checkpoint verifies, is in the
  database unchanged, and names a record of the chain with that hash; and no more than N records
  follow the last anchor. A chain rewritten and re-chained, a deleted checkpoint, an end cut off
  with its checkpoint: each contradicts a line the database's writers could not take back.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hsmgate.domain.audit.chain import checkpoint_message, record_hash
from hsmgate.store.audit import GENESIS_HASH, Head


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
    #: None: not compared with anchors
    anchors: int | None = None
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
                 *, public_key_der: bytes | None, head: Head | None = None, interval: int | None = None,
                 anchors: Sequence[Mapping[str, Any]] | None = None) -> Report:
    """Check one partition's records (in the order given) and checkpoints; with ``interval``, that
    a signed checkpoint comes at least every ``interval`` records; with ``anchors`` (this
    partition's), that the database agrees with each (module text). Every finding names the record."""
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

    stored: dict[int, Mapping[str, Any]] = {}
    sound: set[int] = set()  # checkpoints that verify and match their record
    for checkpoint in checkpoints:
        report.checkpoints += 1
        seq = checkpoint["seq"]
        stored[seq] = checkpoint
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
        else:
            sound.add(seq)
    if public_key_der is None and report.checkpoints:
        report.notes.append(f"partition {partition}: checkpoint signatures not checked (no attestation public key)")
    if interval is not None:
        _check_coverage(report, sorted(sound), interval)
    if anchors is not None:
        _check_anchors(report, anchors, stored, by_seq, public_key_der=public_key_der, interval=interval)
    # A duplicated problem line helps nobody.
    unique: dict[str, Problem] = {str(p): p for p in report.problems}
    report.problems = list(unique.values())
    return report


def _check_coverage(report: Report, sound: list[int], interval: int) -> None:
    """A signed checkpoint at least every ``interval`` records, and at most ``interval`` records
    after the last one."""
    previous = 0
    for seq in [*sound, None]:
        end = report.last_seq if seq is None else seq
        if end - previous > interval:
            if seq is not None:
                what = f"no signed checkpoint among records {previous + 1}–{seq - 1}; one is due every {interval} records"
            elif previous:
                what = (f"{end - previous} records follow the last signed checkpoint (record {previous}); "
                        f"at most {interval} may")
            else:
                what = f"no signed checkpoint among the {end} records; one is due every {interval} records"
            report.problems.append(Problem(report.partition, None, f"{what} (a checkpoint was deleted, or could "
                                                                   "not be signed: see the server log)"))
        previous = end


def _check_anchors(report: Report, anchors: Sequence[Mapping[str, Any]], stored: Mapping[int, Mapping[str, Any]],
                   by_seq: Mapping[int, Mapping[str, Any]], *, public_key_der: bytes | None,
                   interval: int | None) -> None:
    """The database against the checkpoints anchored outside it (module text)."""
    partition = report.partition
    problem = report.problems.append
    report.anchors = len(anchors)
    for anchor in sorted(anchors, key=lambda item: item["seq"]):
        seq = anchor["seq"]
        if public_key_der is not None:
            message = checkpoint_message(partition=partition, seq=seq, hash=anchor["hash"], time=anchor["time"])
            if not verify_signature(public_key_der, message, anchor["signature"]):
                problem(Problem(partition, seq, "its anchored checkpoint does not verify with the attestation key "
                                                "(the anchor was changed)"))
                continue
        checkpoint = stored.get(seq)
        if checkpoint is None:
            problem(Problem(partition, seq, "its checkpoint is anchored outside the database but missing from it "
                                            "(the checkpoint was deleted)"))
        elif any(checkpoint[name] != anchor[name] for name in ("hash", "time", "signature")):
            problem(Problem(partition, seq, "its checkpoint in the database differs from the anchored one "
                                            "(the checkpoint was replaced)"))
        record = by_seq.get(seq)
        if record is None:
            if seq > report.last_seq:  # (a gap inside the chain is reported as missing records)
                problem(Problem(partition, seq, f"is anchored outside the database but the chain ends at record "
                                                f"{report.last_seq} (records at the end were removed)"))
        elif record["hash"] != anchor["hash"]:
            problem(Problem(partition, seq, "does not match its anchored checkpoint (the chain was rewritten)"))
    if public_key_der is None and anchors:
        report.notes.append(f"partition {partition}: anchor signatures not checked (no attestation public key)")
    last = max((anchor["seq"] for anchor in anchors), default=0)
    if interval is not None and report.last_seq - last > interval:
        what = (f"{report.last_seq - last} records follow the last anchored checkpoint (record {last}); at most "
                f"{interval} may" if last else f"none of the {report.last_seq} records is anchored; at most "
                                               f"{interval} may follow the last anchor")
        problem(Problem(partition, None, f"{what} (anchors are missing, or the anchor file is not the one this log "
                                         "was anchored to)"))
