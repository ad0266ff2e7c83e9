"""A state database that cannot be reached or written for now (connection refused or terminated, disk
full, locked) is told apart from a bug, and answered 503 / 703 — not 500 / 1 with a traceback logged
for every request — and service resumes by itself when the database is back."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from hsmgate.store.database import unavailable
from tests.helpers import LiveServer, assert_tsb_error, soft_settings, unique
from tests.postgres import SERVER, allow_connections, database_name, fresh_database, terminate_connections


def sqlite_error(path: Path, *statements: str, timeout: float = 0.0) -> sqlite3.Error:
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        for statement in statements:
            connection.execute(statement)
    except sqlite3.Error as exc:
        return exc
    finally:
        connection.close()
    raise AssertionError("no error")


def test_sqlite_disk_full_and_locked_are_unavailable_and_bugs_are_not(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("CREATE TABLE t (v TEXT UNIQUE)")
    setup.execute("INSERT INTO t VALUES ('x')")
    # disk full: the file may not grow beyond its current pages (SQLITE_FULL)
    full = sqlite_error(path, "PRAGMA max_page_count = 2", "INSERT INTO t SELECT hex(randomblob(9000))")
    assert "full" in str(full) and unavailable(full)
    # locked: another connection holds the write lock (SQLITE_BUSY)
    setup.execute("BEGIN IMMEDIATE")
    locked = sqlite_error(path, "INSERT INTO t VALUES ('y')")
    assert "locked" in str(locked) and unavailable(locked)
    setup.execute("ROLLBACK")
    setup.close()
    for bug in (sqlite_error(path, "SELEKT 1"), sqlite_error(path, "SELECT * FROM missing"),
                sqlite_error(path, "INSERT INTO t VALUES ('x')")):
        assert not unavailable(bug), bug
    engine = create_engine(f"sqlite:///{path}")  # SQLAlchemy's wrapper is looked through
    with engine.connect() as connection, pytest.raises(DBAPIError) as wrapped:
        connection.execute(text("SELECT * FROM missing"))
    assert not unavailable(wrapped.value)
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_refused_and_terminated_connections_are_unavailable_and_bugs_are_not() -> None:
    with fresh_database() as url:
        name = database_name(url)
        with psycopg.connect(f"{SERVER}/{name}", autocommit=True) as connection:
            with pytest.raises(psycopg.Error) as bug:
                connection.execute("SELEKT 1")
            assert not unavailable(bug.value)
            terminate_connections(name)
            with pytest.raises(psycopg.Error) as terminated:
                connection.execute("SELECT 1")
            assert unavailable(terminated.value), terminated.value
        allow_connections(name, False)
        try:
            with pytest.raises(psycopg.Error) as refused:
                psycopg.connect(f"{SERVER}/{name}")
            assert unavailable(refused.value), refused.value
        finally:
            allow_connections(name, True)


@pytest.fixture()
def pg_server(tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    with fresh_database() as url, LiveServer(soft_settings(tmp_path, database_url=url)) as server:
        yield server, database_name(url)


def sign(http: httpx.Client, label: str) -> httpx.Response:
    return http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": "AA==", "signKeyName": label, "signatureAlgorithm": "EDDSA"}})


@pytest.mark.postgres
def test_a_state_database_refusing_connections_is_503_703_then_service_resumes(
        pg_server: tuple[LiveServer, str]) -> None:
    server, name = pg_server
    with server.client() as http:
        label = unique("state")
        assert http.post("/v1/key", json={"label": label, "algorithm": "ED", "curveOid": "1.3.101.112", "attributes": {
            "sign": True, "decrypt": False, "unwrap": False}}).status_code == 201
        assert sign(http, label).status_code == 200
        allow_connections(name, False)
        try:
            terminate_connections(name)
            assert_tsb_error(sign(http, label), 703, 503)
            assert_tsb_error(http.get("/v1/key"), 703, 503)
            assert_tsb_error(http.post("/v1/key/attributes", json={"label": label}), 703, 503)
        finally:
            allow_connections(name, True)
        deadline = time.monotonic() + 10
        while (response := sign(http, label)).status_code != 200:
            assert_tsb_error(response, 703, 503)
            assert time.monotonic() < deadline, "service did not resume"
            time.sleep(0.05)
        assert http.get("/v1/key").status_code == 200


def test_a_scheduler_pass_on_an_unavailable_database_logs_one_line(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The SKA scheduler's pass meets a full disk: one warning line, no traceback (a bug still gets one)."""
    from hsmgate.domain.ska.requests import RequestScheduler

    path = tmp_path / "state.db"
    sqlite3.connect(path).execute("CREATE TABLE t (v TEXT)").connection.close()
    full = sqlite_error(path, "PRAGMA max_page_count = 2", "INSERT INTO t SELECT hex(randomblob(9000))")
    bug = sqlite_error(path, "SELEKT 1")

    class Service:
        partition_name = "p"
        error: Exception = full

        def run_due(self) -> int:
            raise self.error

    service = Service()
    scheduler = RequestScheduler(lambda: [service], interval=60)
    with caplog.at_level("WARNING", logger="hsmgate.ska"):
        scheduler.run_once()
        service.error = bug
        scheduler.run_once()
    unavailable_line, bug_line = caplog.records
    assert unavailable_line.levelname == "WARNING" and unavailable_line.exc_info is None
    assert "state database is unavailable" in unavailable_line.getMessage()
    assert bug_line.levelname == "ERROR" and bug_line.exc_info is not None


@pytest.mark.postgres
def test_the_quick_connection_lost_is_replaced_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """quick_row on a terminated connection reconnects; the dead one is dropped without the pool's
    'Exception during reset' traceback (closing rolled back on the lost connection)."""
    from hsmgate.store.database import Database

    with fresh_database() as url:
        db = Database(url)
        try:
            assert db.quick_scalar("SELECT 1", ()) == 1
            terminate_connections(database_name(url))
            with caplog.at_level("ERROR"):
                assert db.quick_scalar("SELECT 2", ()) == 2
            assert [r for r in caplog.records if r.exc_info] == [], caplog.text
        finally:
            db.dispose()
