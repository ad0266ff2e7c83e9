"""Repository of SKA requests and their approval tasks.

Every state change is a *conditional* UPDATE in a transaction of its own (``… WHERE id = ? AND
status IN (…)``) whose row count says whether this caller made the change. That is how one request
is executed exactly once even when several hsmgate processes share the database: each would-be
executor claims the request (``PENDING|APPROVED → EXECUTING``) and only the one whose UPDATE
matched runs it. On PostgreSQL a concurrent UPDATE waits for the row lock and re-checks the
condition on the committed row; on SQLite writers are serialised by the database lock. Reads and
writes are never mixed in one transaction (SQLite would refuse a read transaction's upgrade after
another writer committed).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update

from hsmgate.store.database import Database
from hsmgate.store.models import SkaRequestRow, SkaTaskRow


class TaskState(enum.StrEnum):
    OPEN = "OPEN"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class SortOrder(enum.StrEnum):
    CREATION_DATE_ASC = "CREATION_DATE_ASC"
    CREATION_DATE_DESC = "CREATION_DATE_DESC"
    LAST_FETCHED_DATE_ASC = "LAST_FETCHED_DATE_ASC"
    LAST_FETCHED_DATE_DESC = "LAST_FETCHED_DATE_DESC"


LIVE = ("PENDING", "APPROVED")
"""Statuses of requests that may still be approved, executed, cancelled or expire."""


def count_by_status(db: Database) -> dict[tuple[str, str], int]:
    """Requests per (partition, status) across every partition: one indexed GROUP BY (metrics)."""
    with db.session() as session:
        rows = session.execute(select(SkaRequestRow.partition, SkaRequestRow.status, func.count())
                               .group_by(SkaRequestRow.partition, SkaRequestRow.status))
        return {(partition, status): int(count) for partition, status, count in rows}


class RequestRepository:
    """Requests and tasks of one partition."""

    def __init__(self, db: Database, partition: str) -> None:
        self._db = db
        self.partition = partition

    # -- requests --------------------------------------------------------------------------------

    def add(self, request: SkaRequestRow, tasks: Sequence[SkaTaskRow]) -> None:
        """Insert a request and its tasks in one transaction."""
        request.partition = self.partition
        with self._db.session() as session:
            session.add(request)
            session.flush()
            for task in tasks:
                task.partition = self.partition
                task.request_id = request.id
                session.add(task)

    def get(self, request_id: str) -> SkaRequestRow | None:
        with self._db.session() as session:
            return session.scalar(select(SkaRequestRow).where(
                SkaRequestRow.id == request_id, SkaRequestRow.partition == self.partition))

    def find(self, statuses: Iterable[str] | None = None) -> list[SkaRequestRow]:
        query = select(SkaRequestRow).where(SkaRequestRow.partition == self.partition)
        if statuses is not None:
            query = query.where(SkaRequestRow.status.in_(list(statuses)))
        with self._db.session() as session:
            return list(session.scalars(query.order_by(SkaRequestRow.created_at, SkaRequestRow.id)))

    def transition(self, request_id: str, from_statuses: Iterable[str], to_status: str, **values: object) -> bool:
        """``UPDATE … SET status = to_status WHERE id = ? AND status IN from_statuses``; True when
        this call changed the row."""
        with self._db.session() as session:
            result = session.execute(
                update(SkaRequestRow)
                .where(SkaRequestRow.id == request_id, SkaRequestRow.partition == self.partition,
                       SkaRequestRow.status.in_(list(from_statuses)))
                .values(status=to_status, **values)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    def update_live(self, request_id: str, status: str, **values: object) -> bool:
        """Set fields of a request that is still ``status`` (e.g. a new expiry of a PENDING one)."""
        return self.transition(request_id, (status,), status, **values)

    def due(self, now: datetime) -> list[str]:
        """Ids of requests the scheduler must look at: APPROVED ones whose timelock has passed and
        live ones past their expiry."""
        query = select(SkaRequestRow.id).where(
            SkaRequestRow.partition == self.partition,
            or_(
                and_(SkaRequestRow.status == "APPROVED", SkaRequestRow.ready_at <= now),
                and_(SkaRequestRow.status.in_(LIVE), SkaRequestRow.expires_at < now),
            ),
        ).order_by(SkaRequestRow.created_at)
        with self._db.session() as session:
            return list(session.scalars(query))

    def stale_executing(self, claimed_before: datetime) -> list[str]:
        """Ids of requests claimed before ``claimed_before`` and never finished (process died)."""
        with self._db.session() as session:
            return list(session.scalars(select(SkaRequestRow.id).where(
                SkaRequestRow.partition == self.partition, SkaRequestRow.status == "EXECUTING",
                SkaRequestRow.claimed_at < claimed_before)))

    def live_ids_of_key(self, label: str) -> list[str]:
        with self._db.session() as session:
            return list(session.scalars(select(SkaRequestRow.id).where(
                SkaRequestRow.partition == self.partition, SkaRequestRow.key_label == label,
                SkaRequestRow.status.in_(LIVE))))

    # -- results ---------------------------------------------------------------------------------

    def replace_result(self, request_id: str, old: str, new: str) -> bool:
        """``result = new`` where it is still ``old`` (sealing a plaintext result of before)."""
        with self._db.session() as session:
            result = session.execute(
                update(SkaRequestRow)
                .where(SkaRequestRow.id == request_id, SkaRequestRow.partition == self.partition,
                       SkaRequestRow.result == old)
                .values(result=new).execution_options(synchronize_session=False))
            return result.rowcount == 1

    def erase_result(self, request_id: str) -> bool:
        """Erase the result of an EXECUTED request; True when there was one."""
        with self._db.session() as session:
            result = session.execute(
                update(SkaRequestRow)
                .where(SkaRequestRow.id == request_id, SkaRequestRow.partition == self.partition,
                       SkaRequestRow.status == "EXECUTED", SkaRequestRow.result.is_not(None))
                .values(result=None).execution_options(synchronize_session=False))
            return result.rowcount == 1

    def erase_results_before(self, executed_before: datetime) -> int:
        """Erase the results of requests executed before ``executed_before``; how many."""
        with self._db.session() as session:
            result = session.execute(
                update(SkaRequestRow)
                .where(SkaRequestRow.partition == self.partition, SkaRequestRow.status == "EXECUTED",
                       SkaRequestRow.result.is_not(None), SkaRequestRow.executed_at < executed_before)
                .values(result=None).execution_options(synchronize_session=False))
            return result.rowcount

    def results_not_starting_with(self, prefix: str) -> list[tuple[str, str, str]]:
        """(id, kind, result) of stored results that do not start with ``prefix``."""
        with self._db.session() as session:
            rows = session.execute(select(SkaRequestRow.id, SkaRequestRow.kind, SkaRequestRow.result).where(
                SkaRequestRow.partition == self.partition, SkaRequestRow.result.is_not(None),
                SkaRequestRow.result.not_like(f"{prefix}%")))
            return [(row.id, row.kind, row.result) for row in rows]

    # -- tasks -----------------------------------------------------------------------------------

    def tasks_of(self, request_id: str) -> list[SkaTaskRow]:
        with self._db.session() as session:
            return list(session.scalars(
                select(SkaTaskRow).where(SkaTaskRow.request_id == request_id).order_by(SkaTaskRow.seq)))

    def tasks_of_many(self, request_ids: Sequence[str]) -> dict[str, list[SkaTaskRow]]:
        out: dict[str, list[SkaTaskRow]] = {request_id: [] for request_id in request_ids}
        if not request_ids:
            return out
        with self._db.session() as session:
            for task in session.scalars(
                    select(SkaTaskRow).where(SkaTaskRow.request_id.in_(list(request_ids))).order_by(SkaTaskRow.seq)):
                out[task.request_id].append(task)
        return out

    def task(self, task_id: str) -> SkaTaskRow | None:
        with self._db.session() as session:
            return session.scalar(select(SkaTaskRow).where(
                SkaTaskRow.id == task_id, SkaTaskRow.partition == self.partition))

    def decide(self, task_id: str, state: TaskState, now: datetime, signature: bytes | None = None) -> bool:
        """OPEN → ``state``; True when this call made the decision."""
        with self._db.session() as session:
            result = session.execute(
                update(SkaTaskRow)
                .where(SkaTaskRow.id == task_id, SkaTaskRow.state == TaskState.OPEN.value)
                .values(state=state.value, decided_at=now, signature=signature)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    def open_tasks(self, *, approver: bytes | None, kinds: Iterable[str], task_id: str | None,
                   request_id: str | None, order: SortOrder, offset: int, limit: int | None,
                   ) -> list[tuple[SkaTaskRow, SkaRequestRow]]:
        """Open tasks of live requests, filtered, sorted and paged."""
        query = (
            select(SkaTaskRow, SkaRequestRow)
            .join(SkaRequestRow, SkaRequestRow.id == SkaTaskRow.request_id)
            .where(SkaTaskRow.partition == self.partition, SkaTaskRow.state == TaskState.OPEN.value,
                   SkaRequestRow.status.in_(LIVE), SkaTaskRow.kind.in_(list(kinds)))
        )
        if approver is not None:
            query = query.where(SkaTaskRow.approver == approver)
        if task_id is not None:
            query = query.where(SkaTaskRow.id == task_id)
        elif request_id is not None:
            query = query.where(SkaTaskRow.request_id == request_id)
        column = SkaTaskRow.created_at if order.name.startswith("CREATION") else SkaTaskRow.last_fetched_at
        if order.name.endswith("DESC"):
            query = query.order_by(column.desc(), SkaTaskRow.seq.desc())
        else:
            query = query.order_by(column.asc(), SkaTaskRow.seq.asc())
        query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._db.session() as session:
            return [(task, request) for task, request in session.execute(query).all()]

    def touch(self, task_ids: Sequence[str], now: datetime) -> None:
        """Record that these tasks were just returned to a caller (LAST_FETCHED_DATE)."""
        if not task_ids:
            return
        with self._db.session() as session:
            session.execute(update(SkaTaskRow).where(SkaTaskRow.id.in_(list(task_ids)))
                            .values(last_fetched_at=now).execution_options(synchronize_session=False))

    def purge(self, request_id: str) -> None:
        """Delete a request and (cascade) its tasks."""
        with self._db.session() as session:
            session.execute(delete(SkaTaskRow).where(SkaTaskRow.request_id == request_id))
            session.execute(delete(SkaRequestRow).where(SkaRequestRow.id == request_id))


    def drop_open_tasks(self, approver: bytes) -> int:
        """Delete the open tasks of ``approver`` (a deleted approver's); returns how many."""
        with self._db.session() as session:
            result = session.execute(delete(SkaTaskRow).where(
                SkaTaskRow.partition == self.partition, SkaTaskRow.approver == approver,
                SkaTaskRow.state == TaskState.OPEN.value).execution_options(synchronize_session=False))
            return int(result.rowcount or 0)
