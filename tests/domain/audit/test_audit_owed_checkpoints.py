"""A checkpoint due at a record that could not be signed (the HSM away) or whose record's commit
failed with an unknown outcome (the connection lost during COMMIT, the records in the chain all the
same) is signed late, once the trail can, so that ``audit verify`` does not report the stretch
without a checkpoint as a deleted one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hsmgate.domain.audit import recording
from hsmgate.domain.audit.recording import Actor, AuditTrail, AuditUnavailable
from hsmgate.domain.audit.verification import verify_chain
from hsmgate.store.audit import AuditRepository
from hsmgate.store.database import Database

INTERVAL = 4


class Signer:
    """An attestation signer that fails while :attr:`away` is set."""

    key_name = "attestation-key"

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.away = False

    def sign(self, message: bytes) -> bytes:
        if self.away:
            raise OSError("token not present (simulated)")
        return self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())

    def public_key_der(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


class LostAfterCommit(AuditRepository):
    """A repository whose next transaction commits, then reports the connection lost."""

    lose_next = False

    def _transaction(self, work: Any) -> Any:
        result = super()._transaction(work)
        if self.lose_next:
            self.lose_next = False
            raise OSError("the connection is lost (simulated, after COMMIT)")
        return result


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.migrate()
    yield database
    database.dispose()


def trail_of(repository: AuditRepository) -> tuple[AuditTrail, Signer]:
    trail = AuditTrail(repository, checkpoint_interval=INTERVAL)
    signer = Signer()
    trail.signers["default"] = signer  # type: ignore[assignment]
    return trail, signer


def record(trail: AuditTrail, number: int) -> None:
    trail.record(Actor("alice", "test", "default", f"r{number}"), "synchronousSign", "k", "ok")


def verified(db: Database, signer: Signer) -> list[str]:
    repository = AuditRepository(db)
    report = verify_chain("default", repository.records("default"), repository.checkpoints("default"),
                          public_key_der=signer.public_key_der(), head=repository.head("default"), interval=INTERVAL)
    return [str(problem) for problem in report.problems]


def test_a_checkpoint_that_could_not_be_signed_is_signed_after_a_later_group(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording, "OWED_RETRY_INTERVAL", 0.0)  # (1 s: not tried again at once after a failure)
    repository = AuditRepository(db)
    trail, signer = trail_of(repository)
    for number in (1, 2, 3):
        record(trail, number)
    signer.away = True
    record(trail, 4)  # due at 4: the token is away
    assert trail.owed("default") == [4]
    signer.away = False
    for number in (5, 6, 7, 8):
        record(trail, number)
    assert [c["seq"] for c in repository.checkpoints("default")] == [4, 8]
    assert trail.owed("default") == []
    assert verified(db, signer) == []
    trail.close()


def test_a_group_whose_commit_outcome_is_unknown_gets_its_checkpoint(db: Database) -> None:
    repository = LostAfterCommit(db)
    trail, signer = trail_of(repository)
    for number in (1, 2, 3):
        record(trail, number)
    repository.lose_next = True
    with pytest.raises(AuditUnavailable):  # fail-closed: the caller is refused, the record is in the chain
        record(trail, 4)
    assert [r["request_id"] for r in repository.records("default")][-1] == "r4"
    record(trail, 5)
    assert [c["seq"] for c in repository.checkpoints("default")] == [4]
    assert verified(db, signer) == []
    trail.close()


def test_an_owed_checkpoint_is_signed_at_shutdown(db: Database) -> None:
    repository = AuditRepository(db)
    trail, signer = trail_of(repository)
    signer.away = True
    for number in range(1, 9):
        record(trail, number)
    assert trail.owed("default") == [4, 8]
    signer.away = False
    trail.settle_owed("default", now=True)  # as Runtime.close does
    assert [c["seq"] for c in repository.checkpoints("default")] == [4, 8]
    assert verified(db, signer) == []
    trail.close()
