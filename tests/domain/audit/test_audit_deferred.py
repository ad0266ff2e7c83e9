"""How an async route waits for its audit records (api/execution.py ``run_operation`` and
domain/audit.py ``deferred_records``): the result leaves only once its record is committed, written
on the event loop (SQLite) or by the writer thread (a network database: here a repository told it is
one), without holding a thread while it waits; a record that cannot be written refuses the result;
a block nobody awaited still waits at its end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hsmgate.api.execution import run_operation
from hsmgate.domain.audit.recording import Actor, AuditTrail, AuditUnavailable, RequestAudit, deferred_records
from hsmgate.store.audit import AuditRepository
from hsmgate.store.database import Database


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.migrate()
    yield database
    database.dispose()


def request_for(inline: bool) -> Any:
    """What run_operation reads of a Starlette request."""
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(inline_operations=inline)))


#: (operation inline on the loop, records written on the loop): SQLite + soft token, and the
#: PostgreSQL path (operation in the threadpool, records by the writer thread)
PATHS = pytest.mark.parametrize(("inline", "local"), [(True, True), (False, False)],
                                ids=["loop", "threadpool-and-writer-thread"])


def repository_for(db: Database, *, local: bool) -> AuditRepository:
    repository = AuditRepository(db)
    repository.local = local  # False: written by the writer thread, as on PostgreSQL
    return repository


def audit_of(trail: AuditTrail, request_id: str = "r1") -> RequestAudit:
    return RequestAudit(trail, Actor("alice", "test", "default", request_id))


def committed_request_ids(db: Database) -> list[str]:
    """Read through a connection of its own: only what is committed."""
    return [r["request_id"] for r in AuditRepository(db).records("default")]


class HeldCommits(AuditRepository):
    """A repository whose transactions wait for :attr:`release` before they commit."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.release = threading.Event()
        self.waiting = threading.Event()

    def _transaction(self, work: Any) -> Any:
        def held(conn: Any) -> Any:
            result = work(conn)
            self.waiting.set()
            assert self.release.wait(10), "never released"
            return result

        return super()._transaction(held)


def test_the_result_leaves_only_after_its_record_is_committed(db: Database) -> None:
    """The writer-thread path: while the commit is held, the operation has run but run_operation
    has not returned, and no thread of the pool is held by the wait."""
    repository = HeldCommits(db)
    repository.local = False
    audit = audit_of(AuditTrail(repository))

    async def scenario() -> None:
        task = asyncio.create_task(run_operation(request_for(inline=False),
                                                 lambda: audit.run("synchronousSign", "k", lambda: b"signature")))
        for _ in range(500):
            if repository.waiting.is_set() or task.done():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert not task.done()
        assert committed_request_ids(db) == []
        # the waiting request holds no worker thread: another operation runs in the pool meanwhile
        from starlette.concurrency import run_in_threadpool
        assert await asyncio.wait_for(run_in_threadpool(lambda: 42), 5) == 42
        repository.release.set()
        assert await asyncio.wait_for(task, 10) == b"signature"
        assert committed_request_ids(db) == ["r1"]

    asyncio.run(scenario())
    repository.close()


@PATHS
def test_concurrent_operations_share_commits_and_each_returns_after_its_own(db: Database, inline: bool,
                                                                            local: bool) -> None:
    repository = repository_for(db, local=local)
    trail = AuditTrail(repository)
    groups: list[int] = []
    repository.add_listener(lambda _partition, rows: groups.append(len(rows)))
    seen: dict[str, list[str]] = {}

    async def one(index: int) -> None:
        audit = audit_of(trail, f"r{index}")
        await run_operation(request_for(inline), lambda: audit.run("synchronousSign", "k", lambda: b"s"))
        seen[f"r{index}"] = committed_request_ids(db)

    async def scenario() -> None:
        await asyncio.gather(*(one(i) for i in range(50)))

    asyncio.run(scenario())
    repository.close()
    assert all(request_id in committed for request_id, committed in seen.items())
    assert sorted(committed_request_ids(db)) == sorted(seen)
    assert sum(groups) == 50 and len(groups) < 50


@PATHS
def test_a_record_that_cannot_be_written_refuses_the_result(db: Database, inline: bool, local: bool,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    repository = repository_for(db, local=local)
    audit = audit_of(AuditTrail(repository))

    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(repository, "_write_rows", broken)
    with pytest.raises(AuditUnavailable):
        asyncio.run(run_operation(request_for(inline), lambda: audit.run("synchronousSign", "k", lambda: b"s")))
    repository.close()


def test_fail_open_returns_the_result_when_the_record_cannot_be_written(db: Database,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    repository = AuditRepository(db)
    audit = audit_of(AuditTrail(repository, fail_closed=False))
    monkeypatch.setattr(repository, "_write_rows", lambda *_a, **_k: (_ for _ in ()).throw(OSError("disk full")))
    assert asyncio.run(run_operation(request_for(True), lambda: audit.run("synchronousSign", "k", lambda: b"s"))) == b"s"


def test_an_error_outcome_is_committed_before_the_error_is_raised(db: Database) -> None:
    audit = audit_of(AuditTrail(AuditRepository(db)))

    def refused() -> bytes:
        raise AuditUnavailable("backend said no")  # any TsbError

    with pytest.raises(AuditUnavailable, match="backend said no"):
        asyncio.run(run_operation(request_for(True), lambda: audit.run("synchronousSign", "k", refused)))
    records = list(AuditRepository(db).records("default"))
    assert [(r["outcome"], r["error_code"]) for r in records] == [("error", 703)]


def test_a_deferred_block_nobody_awaited_waits_at_its_end(db: Database) -> None:
    audit = audit_of(AuditTrail(AuditRepository(db)))
    with deferred_records() as pending:
        assert audit.run("synchronousSign", "k", lambda: b"s") == b"s"
        assert pending and committed_request_ids(db) == []  # submitted, not yet written
    assert committed_request_ids(db) == ["r1"]


def test_started_records_are_written_before_the_call_even_when_deferred(db: Database) -> None:
    audit = audit_of(AuditTrail(AuditRepository(db)))
    during: list[list[str]] = []

    def create() -> str:
        during.append([r["outcome"] for r in AuditRepository(db).records("default")])
        return "created"

    with deferred_records():
        assert audit.mutating("createKey", "k", create) == "created"
    assert during == [["started"]]
    assert [r["outcome"] for r in AuditRepository(db).records("default")] == ["started", "ok"]


def test_operations_within_the_group_window_share_one_commit(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the loop (SQLite), the records of operations that finish within GROUP_WINDOW of each other,
    in different turns of the loop, are written by one transaction; a lone operation is still
    answered, one window later. (The window is widened: on a loaded machine eight turns of the loop
    may take longer than the real one.)"""
    monkeypatch.setattr("hsmgate.api.execution.GROUP_WINDOW", 0.2)
    repository = AuditRepository(db)
    groups: list[int] = []
    repository.add_listener(lambda _partition, rows: groups.append(len(rows)))
    trail = AuditTrail(repository)

    async def one(request_id: str, turns: int = 0) -> bytes:
        for _ in range(turns):  # finishes that many turns of the loop after the others
            await asyncio.sleep(0)
        return await run_operation(request_for(True),
                                   lambda: audit_of(trail, request_id).run("synchronousSign", "k", lambda: b"s"))

    async def scenario() -> None:
        assert await asyncio.gather(*(one(f"g{n}", turns=n) for n in range(8))) == [b"s"] * 8
        assert await one("alone") == b"s"

    try:
        asyncio.run(scenario())
    finally:
        repository.close()
    assert groups == [8, 1]
    assert committed_request_ids(db) == [f"g{n}" for n in range(8)] + ["alone"]
