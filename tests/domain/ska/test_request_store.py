"""The request repository on SQLite and PostgreSQL: the conditional claim is exclusive under
concurrency, and the scheduler's "due" query finds what it must."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hsmgate.store.database import Database
from hsmgate.store.models import SkaRequestRow, SkaTaskRow
from hsmgate.store.requests import LIVE, RequestRepository, SortOrder, TaskState
from tests.helpers import DATABASES
from tests.postgres import fresh_database


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'state.db'}")
        db.migrate()
        yield db
        db.dispose()
        return
    with fresh_database() as url:
        db = Database(url)
        db.migrate()
        yield db
        db.dispose()


def _request(status: str, now: datetime, **values: object) -> SkaRequestRow:
    return SkaRequestRow(id=str(uuid.uuid4()), kind="SIGN", key_label="key", status=status, operation=1,
                         policy=None, request="{}", token=b"t", created_at=now, **values)


def test_claim_is_exclusive(database: Database) -> None:
    repository = RequestRepository(database, "p")
    now = datetime.now(UTC).replace(microsecond=0)
    for _round in range(3):
        row = _request("APPROVED", now)
        repository.add(row, [])
        racers = 8
        barrier = threading.Barrier(racers)
        wins: list[bool] = []

        def claim(request_id: str, barrier: threading.Barrier, wins: list[bool]) -> None:
            barrier.wait()
            wins.append(repository.transition(request_id, LIVE, "EXECUTING", claimed_at=now))

        threads = [threading.Thread(target=claim, args=(row.id, barrier, wins)) for _ in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wins.count(True) == 1
        stored = repository.get(row.id)
        assert stored is not None and stored.status == "EXECUTING"


def test_due_tasks_and_cascade(database: Database) -> None:
    repository = RequestRepository(database, "p")
    other = RequestRepository(database, "q")
    now = datetime.now(UTC).replace(microsecond=0)
    ready = _request("APPROVED", now, ready_at=now - timedelta(seconds=1))
    waiting = _request("APPROVED", now, ready_at=now + timedelta(seconds=60))
    expired = _request("PENDING", now, expires_at=now - timedelta(seconds=1))
    alive = _request("PENDING", now, expires_at=now + timedelta(seconds=60))
    done = _request("EXECUTED", now, expires_at=now - timedelta(seconds=1))
    for row in (ready, waiting, expired, alive, done):
        repository.add(row, [])
    other.add(_request("APPROVED", now, ready_at=now - timedelta(seconds=1)), [])
    assert set(repository.due(now)) == {ready.id, expired.id}

    tasks = [SkaTaskRow(id=str(uuid.uuid4()), kind="SIGN", approver=bytes([i]), state=TaskState.OPEN.value,
                        created_at=now + timedelta(seconds=i), last_fetched_at=now) for i in range(3)]
    with_tasks = _request("PENDING", now)
    repository.add(with_tasks, tasks)
    found = repository.open_tasks(approver=None, kinds=["SIGN"], task_id=None, request_id=with_tasks.id,
                                  order=SortOrder.CREATION_DATE_DESC, offset=0, limit=2)
    assert [task.id for task, _ in found] == [tasks[2].id, tasks[1].id]
    assert other.open_tasks(approver=None, kinds=["SIGN"], task_id=None, request_id=with_tasks.id,
                            order=SortOrder.CREATION_DATE_ASC, offset=0, limit=None) == []
    assert repository.decide(tasks[0].id, TaskState.APPROVED, now, b"sig")
    assert not repository.decide(tasks[0].id, TaskState.REJECTED, now)  # decided once
    repository.purge(with_tasks.id)
    assert repository.task(tasks[1].id) is None and repository.get(with_tasks.id) is None
