"""The key caches of one process — unsealed soft-token keys (``hsm/soft.py``), password hashes and
SKA guard bits (``store/key_metadata.py``) — on SQLite and PostgreSQL: no query while the key
generation is unchanged, and a change made through another process's objects is seen at once on
SQLite and once its notification has arrived on PostgreSQL (``caught_up``, at most 2 s)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from hsmgate.domain import errors
from hsmgate.domain.passwords import KeyPasswordMismatch, PasswordService, hash_password
from hsmgate.domain.ska.guard import BLOCKED, check_use
from hsmgate.hsm.base import KeyAttributes, KeyNotFound, KeySpec, KeyType, SignMechanism, SignScheme
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store import key_generation
from hsmgate.store.database import Database
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.partitions import PartitionRepository
from hsmgate.store.soft_keys import SoftKeyRepository
from tests.store.generation import caught_up, in_sync

SIGNER = KeyAttributes(sign=True, destroyable=True, modifiable=True)
ED25519 = KeySpec(KeyType.ED, curve_oid="1.3.101.112")
EDDSA = SignMechanism(SignScheme.EDDSA, None)
WHEN = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Process:
    """What one hsmgate process holds for partition ``p``, as ``app.build_gateway`` wires it."""

    db: Database
    token: SoftPartition
    metadata: KeyMetadataRepository
    passwords: PasswordService

    def use(self, label: str = "k", password: str | None = None) -> bytes:
        """A synchronous sign as the key-use gate runs it: key state (password hash and guard
        bits, from the cache), password check, guard check, key lookup, sign."""
        state = self.metadata.state(label)
        self.passwords.verify(label, state.password_hash, password)
        check_use("p", label, state.guard)
        self.token.get(label)
        return self.token.sign(label, EDDSA, b"m")


def _process(db: Database, master: bytes) -> Process:
    token = SoftPartition("p", repository=SoftKeyRepository(db, "p"), master_key=master)
    metadata = KeyMetadataRepository(db, "p")
    return Process(db, token, metadata, PasswordService(token, metadata))


@pytest.fixture()
def processes(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Process, Process]]:
    """Two processes on one database and master key; the second's reader in sync before any use,
    so what it caches is trusted on its token (else every use would query and prove nothing). No
    heartbeat: on PostgreSQL, changes must arrive by notification."""
    monkeypatch.setattr(key_generation, "HEARTBEAT", 60.0)
    monkeypatch.setattr(key_generation, "STALE_AFTER", 60.0)
    master = secrets.token_bytes(32)
    other = Database(database.url)
    try:
        in_sync(other)
        yield _process(database, master), _process(other, master)
    finally:
        other.dispose()


class Queries:
    """Every statement a Database sends: quick reads, ORM/Core statements, and on SQLite every
    statement of the quick connection except ``PRAGMA data_version``."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        quick_row = db.quick_row

        def counted(sql: str, params: tuple[object, ...]) -> Any:
            self.statements.append(sql)
            return quick_row(sql, params)

        monkeypatch.setattr(db, "quick_row", counted)
        event.listen(db.engine, "before_cursor_execute", self._orm)
        if db.dialect == "sqlite":
            db.quick_call(lambda driver, _number: driver.set_trace_callback(self._traced))

    def _orm(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement)

    def _traced(self, statement: str) -> None:
        if statement != "PRAGMA data_version" and statement not in self.statements[-1:]:
            self.statements.append(statement)


def test_a_hot_use_runs_no_query_until_key_state_changes(processes: tuple[Process, Process],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = processes
    a.token.generate("k", ED25519, SIGNER)
    caught_up(b.db, a.db)  # b caches what it reads next under the generation that includes "k"
    b.use()
    queries = Queries(b.db, monkeypatch)
    for _ in range(20):
        b.use()
    assert queries.statements == []
    a.token.generate("other", ED25519, SIGNER)  # any key change elsewhere: caches are checked again
    caught_up(b.db, a.db)
    b.use()
    assert any("nonce" in s for s in queries.statements)
    assert any("password_hash, policy_guard" in s for s in queries.statements)
    queries.statements.clear()
    b.use()
    assert queries.statements == []


def test_the_key_state_cache_holds_as_many_keys_as_it_is_given(database: Database,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys used in turn: all remembered when the size allows, one query per use when it does not."""
    in_sync(database)  # PostgreSQL: the listener knows the generation, so reads are remembered
    labels = [f"k{i}" for i in range(5)]
    for size, queries_per_round in ((5, 0), (4, 5)):
        metadata = KeyMetadataRepository(database, "p", hot_cache_size=size)
        for label in labels:
            metadata.state(label)
        queries = Queries(database, monkeypatch)
        for label in labels:
            metadata.state(label)
        assert len([s for s in queries.statements if "policy_guard" in s and "label = ?" in s]) == queries_per_round


def test_a_key_deleted_by_one_process_is_refused_by_another(processes: tuple[Process, Process]) -> None:
    a, b = processes
    a.token.generate("k", ED25519, SIGNER)
    b.use()
    a.token.delete("k")
    caught_up(b.db, a.db)
    with pytest.raises(KeyNotFound):
        b.use()


def test_a_key_replaced_by_one_process_is_reloaded_by_another(processes: tuple[Process, Process]) -> None:
    a, b = processes
    a.token.generate("k", ED25519, SIGNER)
    b.use()
    a.token.delete("k")
    new = a.token.generate("k", ED25519, SIGNER)
    caught_up(b.db, a.db)
    assert b.token.get("k").public_key == new.public_key
    assert a.token.verify("k", EDDSA, b"m", b.use())


def test_a_key_blocked_by_one_process_is_refused_by_another(processes: tuple[Process, Process]) -> None:
    a, b = processes
    a.token.generate("k", ED25519, SIGNER)
    a.metadata.reserve_ska("k", WHEN, policy="{}", guard=0, address_format=None)
    b.use()
    assert a.metadata.set_ska("k", policy="{}", guard=BLOCKED)
    caught_up(b.db, a.db)
    with pytest.raises(errors.OperationForbiddenForKey):
        b.use()
    assert a.metadata.set_ska("k", policy="{}", guard=0)  # unblocked
    caught_up(b.db, a.db)
    b.use()


def test_a_policy_added_by_one_process_guards_the_key_in_another(processes: tuple[Process, Process]) -> None:
    a, b = processes
    a.token.generate("k", ED25519, SIGNER)
    b.use()  # no metadata row: remembered as such
    a.metadata.reserve_ska("k", WHEN, policy="{}", guard=BLOCKED, address_format=None)
    caught_up(b.db, a.db)
    with pytest.raises(errors.OperationForbiddenForKey):
        b.use()


def test_a_password_changed_by_one_process_is_required_by_another(processes: tuple[Process, Process]) -> None:
    a, b = processes
    a.token.generate("k", ED25519, SIGNER)
    b.use()
    a.passwords.change("k", None, "pw-1")
    caught_up(b.db, a.db)
    with pytest.raises(KeyPasswordMismatch):
        b.use()
    b.use(password="pw-1")
    a.metadata.set_password_hash("k", hash_password("pw-2"), when=WHEN)
    caught_up(b.db, a.db)
    with pytest.raises(KeyPasswordMismatch):
        b.use(password="pw-1")


def test_a_purged_partition_is_refused_by_another_process(processes: tuple[Process, Process]) -> None:
    a, b = processes
    a.token.generate("k", ED25519, SIGNER)
    b.use()
    PartitionRepository(a.db).purge_keys("p")
    caught_up(b.db, a.db)
    with pytest.raises(KeyNotFound):
        b.use()


def test_the_writing_process_sees_its_own_change_at_once(processes: tuple[Process, Process]) -> None:
    a, _ = processes
    in_sync(a.db)
    a.token.generate("k", ED25519, SIGNER)
    a.use()
    a.metadata.reserve_ska("k", WHEN, policy="{}", guard=BLOCKED, address_format=None)
    with pytest.raises(errors.OperationForbiddenForKey):
        a.use()  # no waiting, on PostgreSQL too
    a.token.delete("k")
    with pytest.raises(KeyNotFound):
        a.token.sign("k", EDDSA, b"m")


def test_the_soft_tokens_key_cache_is_bounded(database: Database) -> None:
    """HSMGATE_KEY_CACHE_SIZE bounds the unsealed keys a soft partition keeps: the oldest unsealed
    goes first, a forgotten key is unsealed again on its next use, and 0 keeps none."""
    master = secrets.token_bytes(32)
    for size, kept in ((2, 2), (0, 0)):
        token = SoftPartition(f"bounded{size}", repository=SoftKeyRepository(database, f"bounded{size}"),
                              master_key=master, key_cache_size=size)
        labels = [f"k{n}" for n in range(4)]
        for label in labels:
            token.generate(label, ED25519, SIGNER)
        for label in labels:
            public = token.get(label).public_key
            assert public is not None and len(token.sign(label, EDDSA, b"m")) == 64
            assert len(token._cache) <= kept
        if kept:
            assert list(token._cache) == labels[-kept:]  # the two used last
        assert len(token.sign(labels[0], EDDSA, b"m")) == 64  # forgotten, unsealed again
