"""The audit log: what is recorded (and what never is), chain and checkpoint verification catching
an edited, a removed and a reordered record, export, fail-closed, and chain appends racing across
threads and processes (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from hsmgate.cli import cli
from hsmgate.domain.audit.chain import record_hash
from hsmgate.domain.audit.verification import verify_chain
from hsmgate.store.audit import AuditRepository
from hsmgate.store.database import Database
from tests.domain.audit.chain_workers import append
from tests.auth.conftest import ec_key_body, sign_body
from tests.helpers import DATABASES, LiveServer, soft_settings
from tests.postgres import fresh_database

PAYLOAD = base64.b64encode(b"a payload that must never reach the audit log").decode()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A dev-mode server whose chain is checkpointed every 4 records."""
    with LiveServer(soft_settings(tmp_path / "data", audit_checkpoint_interval=4)) as live:
        yield live


def rows(server: LiveServer, partition: str = "default") -> list[dict[str, Any]]:
    return list(AuditRepository(server.app.state.db).records(partition))


def sql(server: LiveServer, *statements: str) -> None:
    with server.app.state.db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def unprotect(server: LiveServer) -> None:
    """What an attacker with write access to the database does first: drop the append-only triggers."""
    sql(server, *(f"DROP TRIGGER {t}_no_{a}" for t in ("audit_log", "audit_checkpoints") for a in ("update", "delete")))


def run_cli(server: LiveServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("HSMGATE_DATA_DIR", str(server.settings.data_dir))
    monkeypatch.setenv("HSMGATE_MASTER_KEY", server.settings.master_key.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.delenv("HSMGATE_CONFIG", raising=False)
    return CliRunner().invoke(cli, list(args))


def workload(server: LiveServer, label: str = "audited") -> None:
    with server.client() as http:
        assert http.post("/v1/key", json=ec_key_body(label)).status_code == 201
        signed = http.post("/v1/synchronousSign", json=sign_body(label, PAYLOAD), headers={"X-Request-ID": "req-42"})
        assert signed.status_code == 200 and signed.headers["X-Request-ID"] == "req-42"
        signature = signed.json()["signature"]
        assert http.post("/v1/verify", json={"verifySignatureRequest": {
            "signKeyName": label, "payload": PAYLOAD, "signature": signature,
            "signatureAlgorithm": "SHA256_WITH_ECDSA"}}).json() == {"signatureValid": True}
        assert http.get(f"/v1/key/{label}/attributes").status_code == 200
        assert http.get("/v1/key/no-such-key/attributes").status_code == 404
        assert http.get("/v1/key").status_code == 200
        assert http.get("/v1/generateRandom/4").status_code == 200
        assert http.delete(f"/v1/key/{label}").status_code == 200
    server.signature = signature  # type: ignore[attr-defined]


def test_every_key_operation_is_recorded_without_payloads(server: LiveServer) -> None:
    workload(server)
    records = rows(server)
    summary = [(r["operation"], r["key_label"], r["outcome"], r["error_code"]) for r in records]
    assert summary == [
        ("createKey", "audited", "started", None), ("createKey", "audited", "ok", None),
        ("synchronousSign", "audited", "ok", None), ("verifySignature", "audited", "ok", None),
        ("getKeyAttributes", "audited", "ok", None), ("getKeyAttributes", "no-such-key", "error", 650),
        ("getKeys", None, "ok", None), ("generateRandom", None, "ok", None),
        ("deleteKey", "audited", "started", None), ("deleteKey", "audited", "ok", None),
    ]
    assert [r["seq"] for r in records] == list(range(1, 11))
    assert all(r["principal"] == "developer" and r["auth_method"] == "dev-mode" for r in records)
    assert records[2]["request_id"] == "req-42"
    assert records[0]["request_id"] == records[1]["request_id"]  # started + outcome of one request
    assert len({r["request_id"] for r in records}) == 8
    dump = json.dumps(records) + json.dumps(AuditRepository(server.app.state.db).checkpoints("default"))
    assert PAYLOAD not in dump and server.signature not in dump  # type: ignore[attr-defined]
    assert "UGF5bG9hZA" not in dump


def test_health_and_service_info_are_not_key_operations(server: LiveServer) -> None:
    with server.client() as http:
        for path in ("/health", "/v1/versionInfo", "/v1/licenseInfo", "/v3/api-docs"):
            assert http.get(path).status_code == 200
    assert rows(server) == []


def test_log_is_append_only_in_the_database(server: LiveServer) -> None:
    workload(server)
    for statement in ("UPDATE audit_log SET principal = 'mallory'", "DELETE FROM audit_log WHERE seq = 2",
                      "DELETE FROM audit_checkpoints"):
        with pytest.raises(Exception, match="append-only"):
            sql(server, statement)


def test_verify_passes_and_checks_the_signed_checkpoints(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    workload(server)
    checkpoints = AuditRepository(server.app.state.db).checkpoints("default")
    assert [c["seq"] for c in checkpoints] == [4, 8]
    result = run_cli(server, monkeypatch, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert "partition default: 10 records, 2 checkpoints (2 signatures verified): OK" in result.output


def test_verify_catches_an_edited_record(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    workload(server)
    unprotect(server)
    sql(server, "UPDATE audit_log SET key_label = 'innocent' WHERE seq = 3")
    result = run_cli(server, monkeypatch, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "TAMPERED: partition default: record 3: was changed" in result.output


def test_verify_catches_a_removed_record(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    workload(server)
    unprotect(server)
    sql(server, "DELETE FROM audit_log WHERE seq = 6")
    result = run_cli(server, monkeypatch, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "record 6: is missing (removed)" in result.output


def test_verify_catches_reordered_records(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    workload(server)
    unprotect(server)
    sql(server, "UPDATE audit_log SET seq = -1 WHERE seq = 2", "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = -1")
    result = run_cli(server, monkeypatch, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "record 2: was chained after record 3, not after record 1: records were reordered" in result.output
    assert "record 3: was chained after record 1, not after record 2: records were reordered" in result.output


def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(server: LiveServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An attacker who edits record 3 and recomputes every hash after it keeps the chain consistent;
    only the attestation key's signature over record 4 (and 8) gives them away."""
    workload(server)
    unprotect(server)
    records = rows(server)
    records[2]["key_label"] = "innocent"
    previous = records[1]["hash"]
    for record in records[2:]:
        record["prev_hash"] = previous
        record["hash"] = previous = record_hash(record)
        sql(server, f"UPDATE audit_log SET key_label = '{record['key_label'] or ''}', prev_hash = '{record['prev_hash']}', "
                    f"hash = '{record['hash']}' WHERE seq = {record['seq']}")
    sql(server, "UPDATE audit_log SET key_label = NULL WHERE key_label = ''",
        f"UPDATE audit_chain_heads SET hash = '{previous}'")
    result = run_cli(server, monkeypatch, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "record 4: does not match its signed checkpoint" in result.output
    assert "record 3: was changed" not in result.output  # the chain itself is consistent


def test_verify_catches_records_cut_from_the_end(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    workload(server)
    unprotect(server)
    sql(server, "DELETE FROM audit_log WHERE seq >= 9")
    result = run_cli(server, monkeypatch, "audit", "verify")
    assert result.exit_code == 1 and "the chain head is record 10 but the last record is 8" in result.output


def test_export_is_verifiable_offline(server: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    workload(server)
    export = tmp_path / "audit.jsonl"
    assert run_cli(server, monkeypatch, "audit", "export", "--output", str(export)).exit_code == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["record"] * 10 + ["checkpoint"] * 2
    assert set(lines[0]) == {"type", "seq", "time", "partition", "principal", "auth_method", "operation", "key_label",
                             "request_id", "outcome", "error_code", "prev_hash", "hash"}
    with server.client() as http:
        der = base64.b64decode(http.get("/v1/key/attestation-key/attributes").json()["json"]["publicKey"])
    public_key = tmp_path / "attestation.der"
    public_key.write_bytes(der)

    ok = CliRunner().invoke(cli, ["audit", "verify", "--input", str(export), "--public-key", str(public_key)])
    assert ok.exit_code == 0, ok.output
    unsigned = CliRunner().invoke(cli, ["audit", "verify", "--input", str(export)])
    assert unsigned.exit_code == 3 and "NOT VERIFIED" in unsigned.output

    text_lines = export.read_text().splitlines()
    text_lines[4], text_lines[5] = text_lines[5], text_lines[4]  # records 5 and 6 swapped in the file
    export.write_text("\n".join(text_lines) + "\n")
    swapped = CliRunner().invoke(cli, ["audit", "verify", "--input", str(export), "--public-key", str(public_key)])
    assert swapped.exit_code == 1 and "record 5: comes after record 6: records are out of order" in swapped.output


def test_the_attestation_key_signs_no_caller_data(server: LiveServer) -> None:
    """Else a caller could sign a forged checkpoint (or attestation) of their choice."""
    with server.client() as http:
        response = http.post("/v1/synchronousSign", json={"signRequest": {
            "payload": PAYLOAD, "signKeyName": "attestation-key", "signatureAlgorithm": "SHA256_WITH_RSA"}})
        assert response.status_code == 400 and response.json()["errorCode"] == 614
        batch = http.post("/v1/synchronousSignBatch", json={"signRequests": [{
            "payload": PAYLOAD, "signKeyName": "attestation-key", "signatureAlgorithm": "SHA256_WITH_RSA"}]})
        assert batch.status_code == 200 and batch.json()["results"][0]["errorCode"] == 614
    assert [(r["operation"], r["error_code"]) for r in rows(server)] == [("synchronousSign", 614)] * 2


# -- fail-closed -------------------------------------------------------------------------------------


def block_inserts(server: LiveServer) -> None:
    sql(server, "CREATE TRIGGER audit_log_blocked BEFORE INSERT ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END")


def test_fail_closed_refuses_operations_whose_record_cannot_be_written(server: LiveServer) -> None:
    with server.client() as http:
        assert http.post("/v1/key", json=ec_key_body("kept")).status_code == 201
        block_inserts(server)
        signed = http.post("/v1/synchronousSign", json=sign_body("kept"))
        assert signed.status_code == 503
        assert signed.json()["errorCode"] == 703 and "signature" not in signed.json()
        created = http.post("/v1/key", json=ec_key_body("never-created"))
        assert created.status_code == 503 and created.json()["errorCode"] == 703
        assert http.delete("/v1/key/kept").status_code == 503
        assert http.get("/v1/key").status_code == 503
        assert http.get("/v1/key/never-created/attributes").status_code == 503
        assert http.get("/health").status_code == 200
        sql(server, "DROP TRIGGER audit_log_blocked")
        assert http.get("/v1/key/never-created/attributes").status_code == 404  # nothing was executed
        assert http.get("/v1/key/kept/attributes").status_code == 200  # nor deleted
    assert run_verify(server)


def test_fail_open_when_configured(tmp_path: Path) -> None:
    with LiveServer(soft_settings(tmp_path, audit_fail_closed=False)) as live, live.client() as http:
        assert http.post("/v1/key", json=ec_key_body("open")).status_code == 201
        block_inserts(live)
        assert http.post("/v1/synchronousSign", json=sign_body("open")).status_code == 200
        assert http.post("/v1/key", json=ec_key_body("open-2")).status_code == 201


def test_audit_can_be_switched_off(tmp_path: Path) -> None:
    with LiveServer(soft_settings(tmp_path, audit_enabled=False)) as live, live.client() as http:
        assert http.post("/v1/key", json=ec_key_body("quiet")).status_code == 201
        assert rows(live) == []


def run_verify(server: LiveServer) -> bool:
    repository = AuditRepository(server.app.state.db)
    return verify_chain("default", repository.records("default"), [], public_key_der=None,
                        head=repository.head("default")).ok


# -- concurrency -------------------------------------------------------------------------------------


def _check(url: str, partitions: tuple[str, ...], expected: int) -> None:
    db = Database(url)
    try:
        repository = AuditRepository(db)
        for partition in partitions:
            records = list(repository.records(partition))
            assert [r["seq"] for r in records] == list(range(1, expected // len(partitions) + 1))
            report = verify_chain(partition, records, [], public_key_der=None, head=repository.head(partition))
            assert report.ok, report.problems
    finally:
        db.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
        Database(url).migrate()
        yield url
    else:
        with fresh_database() as url:
            db = Database(url)
            db.migrate()
            db.dispose()
            yield url


def test_chain_appends_from_many_threads(database_url: str) -> None:
    partitions = ("default", "team-b")
    threads = [threading.Thread(target=append, args=(database_url, f"t{n}", 20, partitions)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _check(database_url, partitions, 160)


@pytest.mark.subprocess
@pytest.mark.slow
def test_chain_appends_from_many_processes(database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=append, args=(database_url, f"p{n}", 20)) for n in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * 3
    _check(database_url, ("default",), 60)


def test_checkpoint_command_signs_the_head(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with server.client() as http:
        http.get("/v1/key")
    first = run_cli(server, monkeypatch, "audit", "checkpoint")
    assert first.exit_code == 0 and "checkpoint signed at record 1" in first.output, first.output
    again = run_cli(server, monkeypatch, "audit", "checkpoint")
    assert "nothing to sign" in again.output


def test_shutdown_signs_what_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = soft_settings(tmp_path)
    with LiveServer(settings) as live, live.client() as http:
        http.get("/v1/key")
        http.get("/v1/key")
    db = Database(settings.resolved_database_url)
    try:
        assert [c["seq"] for c in AuditRepository(db).checkpoints("default")] == [2]
    finally:
        db.dispose()




def test_operations_of_route_built_services_and_password_failures_are_recorded(server: LiveServer) -> None:
    """Routes that build services on the request's partition (encrypt, …) are audited through it;
    a wrong key password is recorded even though the operation never runs."""
    aes = {"label": "aes-audited", "algorithm": "AES", "keySize": 256, "password": "a-long-key-password",
           "attributes": {"decrypt": True, "sign": False, "unwrap": False, "extractable": False,
                          "modifiable": True, "destroyable": True, "sensitive": True}}
    with server.client() as http:
        created = http.post("/v1/key", json=aes)
        assert created.status_code == 201, created.text
        encrypt = {"encryptRequest": {"payload": PAYLOAD, "encryptKeyName": "aes-audited",
                                      "cipherAlgorithm": "AES_GCM", "keyPassword": "a-long-key-password"}}
        response = http.post("/v1/encrypt", json=encrypt)
        assert response.status_code == 200, response.text
        encrypt["encryptRequest"]["keyPassword"] = "guess"
        assert http.post("/v1/encrypt", json=encrypt).json()["errorCode"] == 620
    summary = [(r["operation"], r["key_label"], r["outcome"], r["error_code"]) for r in rows(server)]
    assert ("encrypt", "aes-audited", "ok", None) in summary
    assert ("checkKeyPassword", "aes-audited", "error", 620) in summary
    assert response.json()["encryptedPayload"] not in json.dumps(rows(server))
