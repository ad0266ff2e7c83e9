"""The audit under concurrent load, through real HTTP: every signature handed out has exactly one
committed record, the chain stays one valid chain (one server, two servers and two processes on one
database, SQLite and PostgreSQL), and a record that cannot be written refuses the signature."""

from __future__ import annotations

import asyncio
import base64
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text

from hsmgate.domain.audit.verification import verify_chain
from hsmgate.store.audit import AuditRepository
from hsmgate.store.database import Database
from tests.helpers import DATABASES, LiveServer, ServeProcess, soft_settings, unique
from tests.postgres import fresh_database

ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}
PAYLOAD = b"audited under load"


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite: operations and their audit commits run on the event loop; PostgreSQL: operations in
    the threadpool, commits by the repository's writer thread (api/execution.py)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        with fresh_database() as url:
            yield url


def create_ed25519(base_url: str) -> tuple[str, Ed25519PublicKey]:
    label = unique("load")
    response = httpx.post(f"{base_url}/v1/key", timeout=60, json={
        "label": label, "algorithm": "ED", "curveOid": "1.3.101.112", "attributes": ATTRIBUTES})
    assert response.status_code == 201, response.text
    public = serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))
    assert isinstance(public, Ed25519PublicKey)
    return label, public


def sign_concurrently(base_urls: list[str], label: str, count: int, concurrency: int = 48, *,
                      database_url: str | None = None) -> dict[str, httpx.Response]:
    """``count`` sign requests, ``concurrency`` at a time, spread over ``base_urls``; by request id.
    With ``database_url``, each signature is checked to be on record (committed) when it arrives."""
    db = Database(database_url) if database_url else None

    def on_record(request_id: str) -> bool:
        assert db is not None
        with db.engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM audit_log WHERE request_id = :id"),
                                      {"id": request_id}).scalar_one() == 1

    async def run() -> dict[str, httpx.Response]:
        limit = asyncio.Semaphore(concurrency)
        body = {"signRequest": {"payload": base64.b64encode(PAYLOAD).decode(), "signKeyName": label,
                                "signatureAlgorithm": "EDDSA"}}
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency * 2)) as client:
            async def one(index: int) -> tuple[str, httpx.Response]:
                request_id = f"load-{index}-{os.urandom(4).hex()}"
                async with limit:
                    url = f"{base_urls[index % len(base_urls)]}/v1/synchronousSign"
                    response = await client.post(url, json=body, headers={"X-Request-ID": request_id})
                    if db is not None and response.status_code == 200:
                        assert await asyncio.to_thread(on_record, request_id), \
                            f"{request_id}: signature handed out before its record was committed"
                    return request_id, response

            return dict(await asyncio.gather(*(one(i) for i in range(count))))

    try:
        return asyncio.run(run())
    finally:
        if db is not None:
            db.dispose()


def chain_of(url: str, partition: str = "default") -> tuple[list[dict[str, Any]], Any]:
    """The partition's records and its verification report (chain and head; checkpoints unsigned)."""
    db = Database(url)
    try:
        repository = AuditRepository(db)
        records = list(repository.records(partition))
        report = verify_chain(partition, records, repository.checkpoints(partition), public_key_der=None,
                              head=repository.head(partition))
        return records, report
    finally:
        db.dispose()


def assert_one_record_per_signature(records: list[dict[str, Any]], responses: dict[str, httpx.Response],
                                    public: Ed25519PublicKey) -> None:
    signed = Counter(r["request_id"] for r in records if r["operation"] == "synchronousSign")
    for request_id, response in responses.items():
        assert response.status_code == 200, response.text
        public.verify(base64.b64decode(response.json()["signature"]), PAYLOAD)
        assert signed[request_id] == 1, f"{request_id}: {signed[request_id]} records"
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


@pytest.mark.slow
def test_concurrent_signs_each_leave_one_record_in_one_valid_chain(database_url: str, tmp_path: Path) -> None:
    settings = soft_settings(tmp_path / "data", database_url=database_url, audit_checkpoint_interval=16)
    with LiveServer(settings) as server:
        groups: list[int] = []  # records per committed transaction
        server.app.state.audit.repository.add_listener(lambda _partition, rows: groups.append(len(rows)))
        label, public = create_ed25519(server.url)
        responses = sign_concurrently([server.url], label, 240, database_url=database_url)
        with server.client() as http:
            attestation = base64.b64decode(http.get("/v1/key/attestation-key/attributes").json()["json"]["publicKey"])
    records, _ = chain_of(database_url)
    assert_one_record_per_signature(records, responses, public)
    assert max(groups) > 1, "no two records shared a commit: the group commit does not group"
    db = Database(database_url)
    try:
        repository = AuditRepository(db)
        report = verify_chain("default", records, repository.checkpoints("default"), public_key_der=attestation,
                              head=repository.head("default"))
    finally:
        db.dispose()
    assert report.ok, report.problems
    assert report.checkpoints_verified >= len(records) // 16  # every 16th record, plus the one at shutdown


def block_record_inserts(url: str) -> Callable[[], None]:
    """Make every INSERT into audit_log fail (a full disk, as the database sees it); returns the undo."""
    db = Database(url)
    if db.dialect == "sqlite":
        block = ["CREATE TRIGGER audit_log_blocked BEFORE INSERT ON audit_log "
                 "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END"]
        unblock = ["DROP TRIGGER audit_log_blocked"]
    else:
        block = ["CREATE FUNCTION audit_log_blocked() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN RAISE EXCEPTION 'disk full (simulated)'; END $$",
                 "CREATE TRIGGER audit_log_blocked BEFORE INSERT ON audit_log FOR EACH ROW "
                 "EXECUTE FUNCTION audit_log_blocked()"]
        unblock = ["DROP TRIGGER audit_log_blocked ON audit_log", "DROP FUNCTION audit_log_blocked()"]

    def run(statements: list[str]) -> None:
        with db.engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))

    run(block)

    def undo() -> None:
        run(unblock)
        db.dispose()

    return undo


def assert_refused(responses: dict[str, httpx.Response]) -> None:
    for response in responses.values():
        assert response.status_code == 503, response.text
        assert response.json()["errorCode"] == 703 and "signature" not in response.json()


def test_signatures_whose_record_cannot_be_written_are_refused(database_url: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with LiveServer(soft_settings(tmp_path / "data", database_url=database_url)) as server:
        label, public = create_ed25519(server.url)
        unblock = block_record_inserts(database_url)
        try:
            assert_refused(sign_concurrently([server.url], label, 40, concurrency=16))
        finally:
            unblock()

        repository = server.app.state.audit.repository

        def broken(*_args: object, **_kwargs: object) -> None:
            raise OSError("the audit database went away (simulated)")

        monkeypatch.setattr(repository, "_write_rows", broken)
        assert_refused(sign_concurrently([server.url], label, 40, concurrency=16))
        monkeypatch.undo()

        accepted = sign_concurrently([server.url], label, 20, concurrency=8)
    records, report = chain_of(database_url)
    assert report.ok, report.problems
    assert_one_record_per_signature(records, accepted, public)
    assert sum(r["operation"] == "synchronousSign" for r in records) == 20  # the refused ones left none


@pytest.mark.slow
def test_two_servers_on_one_database_append_to_one_chain(database_url: str, tmp_path: Path) -> None:
    """Two apps (each with its own repository, lock file descriptor and event loop) at once."""
    master_key = base64.b64encode(os.urandom(32)).decode()
    first = soft_settings(tmp_path / "a", database_url=database_url, master_key=master_key)
    second = soft_settings(tmp_path / "b", database_url=database_url, master_key=master_key)
    with LiveServer(first) as a, LiveServer(second) as b:
        label, public = create_ed25519(a.url)
        responses = sign_concurrently([a.url, b.url], label, 240, database_url=database_url)
    records, report = chain_of(database_url)
    assert report.ok, report.problems
    assert_one_record_per_signature(records, responses, public)


@pytest.mark.subprocess
@pytest.mark.slow
def test_two_processes_on_one_database_append_to_one_chain(database_url: str, tmp_path: Path) -> None:
    env = {"HSMGATE_DATABASE_URL": database_url, "HSMGATE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
           "HSMGATE_AUDIT_ENABLED": "true"}
    first, second = ServeProcess(tmp_path, "a", env), ServeProcess(tmp_path, "b", env)
    try:
        first.wait_ready()
        second.wait_ready()
        label, public = create_ed25519(first.url)
        responses = sign_concurrently([first.url, second.url], label, 300, database_url=database_url)
    finally:
        first.stop()
        second.stop()
    records, report = chain_of(database_url)
    assert report.ok, report.problems
    assert_one_record_per_signature(records, responses, public)


def test_a_checkpoint_is_stored_once(database_url: str) -> None:
    """Checkpoints go through the writer's connection (pipeline mode on PostgreSQL): the second
    one at the same seq is refused, and says so."""
    db = Database(database_url)
    db.migrate()
    repository = AuditRepository(db)
    values = {"partition": "p", "seq": 5, "hash": "0" * 64, "time": "2026-12-01T00:00:00.000000Z",
              "key_name": "attestation-key", "signature": "c2lnbmF0dXJl"}
    try:
        assert repository.add_checkpoint(values) is True
        assert repository.add_checkpoint({**values, "signature": "b3RoZXI="}) is False
        assert repository.checkpoints("p") == [values]
    finally:
        repository.close()
        db.dispose()
