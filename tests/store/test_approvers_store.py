"""The approver repository on SQLite and PostgreSQL: one approver per name and partition, a code
redeemed by exactly one caller, re-sealing, removal."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from hsmgate.store.approvers import ApproverRepository, DuplicateApprover
from hsmgate.store.database import Database
from hsmgate.store.models import ApproverRecord

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)


def record(name: str, code_hash: bytes | None = b"\x01" * 32) -> ApproverRecord:
    return ApproverRecord(name=name, key_size=2048, certificate=b"cert", backup_key="backup", oaep_hash="sha256",
                          wrapped_data_key=b"wrapped", backup=b"sealed-p12", recovery=b"sealed-key",
                          code_hash=code_hash, code_expires_at=NOW + timedelta(hours=1), created_at=NOW)


def test_names_are_unique_per_partition(database: Database) -> None:
    first, other = ApproverRepository(database, "p1"), ApproverRepository(database, "p2")
    first.add(record("alice@example.com"))
    with pytest.raises(DuplicateApprover):
        first.add(record("alice@example.com"))
    other.add(record("alice@example.com"))  # another partition's approver of the same name
    assert [row.name for row in first.all()] == ["alice@example.com"]
    assert other.remove("alice@example.com") and not other.remove("alice@example.com")
    assert first.get("alice@example.com") is not None and other.get("alice@example.com") is None


def test_a_code_is_redeemed_once(database: Database) -> None:
    repository = ApproverRepository(database, "p1")
    repository.add(record("bob"))
    assert not repository.redeem("bob", b"\x02" * 32, NOW)  # another code
    with ThreadPoolExecutor(4) as pool:
        wins = list(pool.map(lambda _: repository.redeem("bob", b"\x01" * 32, NOW), range(8)))
    assert wins.count(True) == 1
    row = repository.get("bob")
    assert row is not None and row.code_hash is None and row.code_expires_at is None
    assert row.onboarded_at is not None and row.onboarded_at.replace(tzinfo=UTC) == NOW
    assert repository.set_code("bob", b"\x03" * 32, NOW + timedelta(days=1))
    assert repository.reseal("bob", oaep_hash="sha1", wrapped_data_key=b"w2", backup=b"b2", recovery=b"r2",
                             code_hash=b"\x04" * 32, expires_at=NOW)
    row = repository.get("bob")
    assert row is not None and (row.oaep_hash, bytes(row.backup), bytes(row.code_hash or b"")) == (
        "sha1", b"b2", b"\x04" * 32)
    assert not repository.set_code("nobody", b"\x05" * 32, NOW)
