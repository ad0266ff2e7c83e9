"""The audit log of SKA requests ("every operation on a key, policy, request or approval
appends a record"): creation, approval, rejection, cancellation, execution — in the approver's call
or by the scheduler (principal ``scheduler``) — and expiry, each naming the request, never its
payload or result; the chain stays verifiable by ``hsmgate audit verify``, online and from an export."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from hsmgate.cli import cli
from hsmgate.domain.audit.recording import AuditTrail, AuditUnavailable
from hsmgate.domain.audit.verification import verify_chain
from hsmgate.domain.clock import ManualClock
from hsmgate.domain.ska.approval_token import ApprovalToBeSigned, Operation
from hsmgate.store.audit import AuditRepository
from tests.helpers import assert_tsb_error, unique
from tests.domain.ska.helpers import (
    Approver,
    ClockServer,
    approve,
    clock_server,
    create_key,
    policy,
    rule,
    sign_request,
    status,
    task_of,
    token,
    wait_status,
)

PAYLOAD = b"an SKA payload that must never reach the audit log"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ClockServer]:
    with clock_server(tmp_path / "data", ManualClock(), audit_checkpoint_interval=5) as live:
        yield live


@pytest.fixture()
def http(server: ClockServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def records(server: ClockServer) -> list[dict[str, Any]]:
    return list(AuditRepository(server.app.state.db).records("default"))


def of_request(server: ClockServer, request_id: str) -> list[tuple[str, str, str]]:
    """(operation, outcome, principal) of the records naming the SKA request, in chain order."""
    return [(r["operation"], r["outcome"], r["principal"]) for r in records(server)
            if r["ska_request_id"] == request_id]


def run_cli(server: ClockServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("HSMGATE_DATA_DIR", str(server.settings.data_dir))
    monkeypatch.setenv("HSMGATE_MASTER_KEY", server.settings.master_key.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.delenv("HSMGATE_CONFIG", raising=False)
    monkeypatch.delenv("HSMGATE_PARTITION", raising=False)
    return CliRunner().invoke(cli, list(args))


def test_an_ska_round_trip_is_recorded_and_verifiable(server: ClockServer, http: httpx.Client,
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clock = server.clock
    approver = Approver("ec")
    label = unique("audited-ska")
    create_key(http, label, policy(rule(token((1, [approver])))))

    # approved and executed in the approver's call
    request_id = sign_request(http, label, PAYLOAD)
    assert approve(http, approver, clock, request_id).status_code == 200
    done = status(http, request_id)
    assert done["status"] == "EXECUTED"
    assert of_request(server, request_id) == [
        ("requestSign", "started", "developer"), ("requestSign", "ok", "developer"),
        ("filterSignTasks", "ok", "developer"),
        ("approveTask", "started", "developer"),
        ("executeSign", "started", "developer"), ("executeSign", "ok", "developer"),
        ("approveTask", "ok", "developer"),
        ("getRequestStatus", "ok", "developer"),
    ]

    # cancelled
    cancelled = sign_request(http, label, PAYLOAD)
    assert http.delete(f"/v1/request/{cancelled}").status_code == 200
    assert [op for op, *_ in of_request(server, cancelled)][-2:] == ["cancelRequest", "cancelRequest"]

    # rejected by the only approver: the request is REJECTED
    rejected = sign_request(http, label, PAYLOAD)
    task = task_of(http, approver, clock, rejected)
    reject = http.post("/v1/task", json={**approver.authentication(clock.now()), "id": task["id"]})
    assert reject.status_code == 200, reject.text
    assert [(op, outcome) for op, outcome, _ in of_request(server, rejected)][-3:] == [
        ("rejectTask", "started"), ("rejectRequest", "ok"), ("rejectTask", "ok")]

    named = [r for r in records(server) if r["ska_request_id"] and not r["operation"].startswith(("get", "filter"))]
    assert {r["key_label"] for r in named} == {label}  # the reads name the request only
    dump = json.dumps(records(server))
    assert base64.b64encode(PAYLOAD).decode() not in dump and done["result"] not in dump

    verified = run_cli(server, monkeypatch, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "OK" in verified.output and "signatures verified" in verified.output
    export = tmp_path / "audit.jsonl"
    assert run_cli(server, monkeypatch, "audit", "export", "--output", str(export)).exit_code == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert any(line.get("ska_request_id") == request_id for line in lines)
    assert all("ska_request_id" not in line for line in lines if line["type"] == "record"
               and line["operation"] == "createKey")  # absent when not set: old records keep their hash
    der = base64.b64decode(http.get("/v1/key/attestation-key/attributes").json()["json"]["publicKey"])
    public_key = tmp_path / "attestation.der"
    public_key.write_bytes(der)
    offline = CliRunner().invoke(cli, ["audit", "verify", "--input", str(export), "--public-key", str(public_key)])
    assert offline.exit_code == 0, offline.output


def test_scheduler_executions_and_expiries_are_recorded_as_the_scheduler(server: ClockServer,
                                                                         http: httpx.Client) -> None:
    clock = server.clock
    approver, other = Approver("ec"), Approver("ed25519")
    label = unique("audited-timelock")
    create_key(http, label, policy(rule(token((1, [approver]), timelock=60, timeout=600))))
    timelocked = sign_request(http, label, PAYLOAD)
    assert approve(http, approver, clock, timelocked).status_code == 200
    assert status(http, timelocked)["status"] == "APPROVED"

    expiring_label = unique("audited-timeout")
    create_key(http, expiring_label, policy(rule(token((2, [approver, other]), timeout=300))))
    expiring = sign_request(http, expiring_label, PAYLOAD)

    clock.advance(301)
    wait_status(http, timelocked, "EXECUTED")
    wait_status(http, expiring, "EXPIRED")

    by_scheduler = [r for r in records(server) if r["principal"] == "scheduler"]
    assert {(r["operation"], r["outcome"], r["ska_request_id"]) for r in by_scheduler} >= {
        ("executeSign", "started", timelocked), ("executeSign", "ok", timelocked),
        ("expireRequest", "ok", expiring)}
    assert all(r["auth_method"] == "internal" and r["request_id"] == r["ska_request_id"] for r in by_scheduler)
    assert {r["key_label"] for r in by_scheduler} == {label, expiring_label}
    repository = AuditRepository(server.app.state.db)
    report = verify_chain("default", repository.records("default"), repository.checkpoints("default"),
                          public_key_der=None, head=repository.head("default"))
    assert report.ok, report.problems


def test_synchronous_block_and_a_request_without_policy_are_recorded(server: ClockServer, http: httpx.Client) -> None:
    approver = Approver("ec")
    label = unique("audited-block")
    create_key(http, label, policy(rule(token((1, [approver]))), block=rule(token((1, [approver])))))
    signed = approver.signed_approval(ApprovalToBeSigned.time_less(Operation.BLOCK, label.encode()).encode())
    blocked = http.post("/v1/synchronousBlock", json={"blockRequest": {"blockKeyName": label,
                                                                       "signedApprovals": [signed]}})
    assert blocked.status_code == 200 and blocked.content == b"", blocked.text
    assert ("synchronousBlock", label, "ok") in [(r["operation"], r["key_label"], r["outcome"]) for r in records(server)]

    plain = unique("audited-plain")
    create_key(http, plain, None)
    request_id = sign_request(http, plain, PAYLOAD)  # no policy: executes at once
    assert [(op, outcome) for op, outcome, _ in of_request(server, request_id)] == [
        ("requestSign", "started"), ("executeSign", "started"), ("executeSign", "ok"), ("requestSign", "ok")]


def test_an_unrecordable_execution_hands_out_no_result(server: ClockServer, http: httpx.Client,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail-closed: when the execution's record cannot be written the request FAILS (703) and its
    signature is discarded, as a synchronous signature would be refused."""
    approver = Approver("ec")
    label = unique("audited-failclosed")
    create_key(http, label, policy(rule(token((1, [approver])))))
    request_id = sign_request(http, label, PAYLOAD)
    task = task_of(http, approver, server.clock, request_id)
    original = AuditTrail.record

    def failing(self: AuditTrail, actor: Any, operation: str, *args: Any, **kwargs: Any) -> None:
        if operation == "executeSign" and args[1:2] == ("ok",):
            raise AuditUnavailable()
        original(self, actor, operation, *args, **kwargs)

    monkeypatch.setattr(AuditTrail, "record", failing)
    assert http.post("/v1/approval", json=approver.send_approval(task)).status_code == 200
    monkeypatch.setattr(AuditTrail, "record", original)
    failed = status(http, request_id)
    assert failed["status"] == "FAILED" and failed["result"] is None


@pytest.mark.parametrize("service_key", ["attestation-key", "timestamp-key"])
def test_hsmgates_own_keys_sign_nothing_through_requests(http: httpx.Client, service_key: str) -> None:
    """/v1/sign with a key without policy executes at once: it must not make the attestation key (or
    the timestamp key) sign a caller's payload, as /v1/synchronousSign refuses it."""
    response = http.post("/v1/sign", json={"signRequest": {
        "payload": base64.b64encode(PAYLOAD).decode(), "signKeyName": service_key,
        "signatureAlgorithm": "SHA256_WITH_RSA" if service_key == "attestation-key" else "SHA256_WITH_ECDSA"}})
    assert_tsb_error(response, 614, 400)


@pytest.mark.parametrize("path", ["/v1/synchronousSign", "/v1/synchronousSignBatch"])
def test_the_timestamp_key_signs_no_caller_data(http: httpx.Client, path: str) -> None:
    """A caller who could have the timestamp key sign a blob of their choice could back-date an HSM
    timestamp and so cut the timelock of a policy short (signedApprovals on a synchronous use)."""
    item = {"payload": base64.b64encode(PAYLOAD).decode(), "signKeyName": "timestamp-key",
            "signatureAlgorithm": "SHA256_WITH_ECDSA"}
    if path == "/v1/synchronousSign":
        assert_tsb_error(http.post(path, json={"signRequest": item}), 614, 400)
    else:
        response = http.post(path, json={"signRequests": [item]})
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["errorCode"] == 614
