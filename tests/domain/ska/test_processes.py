"""Requests outlive processes: an approved request waiting for its timelock executes after a
restart, and two OS processes sharing one SQLite database race to execute the same requests —
each request runs exactly once."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsmgate.domain.clock import ManualClock
from tests.helpers import soft_settings, unique
from tests.domain.ska.helpers import (
    Approver,
    approve,
    clock_server,
    create_key,
    policy,
    rule,
    sign_request,
    status,
    token,
    wait_status,
)

REPO = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("race_worker.py")


def _verify(public_key_b64: str, signature_b64: str, payload: bytes) -> None:
    public = serialization.load_der_public_key(base64.b64decode(public_key_b64))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(signature_b64), payload, ec.ECDSA(hashes.SHA256()))


def test_pending_requests_survive_a_restart(tmp_path: Path) -> None:
    approver = Approver("ec")
    settings = soft_settings(tmp_path, ska_scheduler_interval=0.1)
    label = unique("ska-restart")
    with clock_server(tmp_path, ManualClock(), settings=settings) as first, first.client() as http:
        key = create_key(http, label, policy(rule(token((1, [approver]), timelock=120, timeout=3600))))
        approved = sign_request(http, label)
        pending = sign_request(http, label, payload=b"second")
        assert approve(http, approver, first.clock, approved).status_code == 200
        assert status(http, approved)["status"] == "APPROVED"
    later = ManualClock()
    later.advance(180)  # the timelock passed while hsmgate was down
    with clock_server(tmp_path, later, settings=settings) as second, second.client() as http:
        done = wait_status(http, approved, "EXECUTED")  # the new process's scheduler ran it
        _verify(key["json"]["publicKey"], done["result"], b"Some Payload")
        assert status(http, pending)["status"] == "PENDING"
        assert approve(http, approver, later, pending).status_code == 200
        _verify(key["json"]["publicKey"], status(http, pending)["result"], b"second")


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("requests_count", [10])
def test_two_processes_execute_each_request_exactly_once(tmp_path: Path, requests_count: int) -> None:
    approver = Approver("ed25519")
    settings = soft_settings(tmp_path, ska_scheduler_interval=3600)  # this server's scheduler stays out
    label = unique("ska-race")
    with clock_server(tmp_path, ManualClock(), settings=settings) as server, server.client() as http:
        key = create_key(http, label, policy(rule(token((1, [approver]), timelock=60, timeout=0))))
        ids = [sign_request(http, label, payload=f"payload {i}".encode()) for i in range(requests_count)]
        for request_id in ids:
            assert approve(http, approver, server.clock, request_id).status_code == 200
        assert {status(http, request_id)["status"] for request_id in ids} == {"APPROVED"}

        barrier = tmp_path / "barrier"
        barrier.mkdir()
        master_key = settings.master_key.get_secret_value() if settings.master_key else ""
        command = [sys.executable, str(WORKER), str(tmp_path), master_key, label, "120", str(barrier), "2"]
        workers = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for _ in range(2)]
        outputs = []
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            outputs.append(json.loads(out.strip().splitlines()[-1]))

        executed = [set(o["executed"]) for o in outputs]
        print("executed per process:", [len(e) for e in executed])
        assert executed[0].isdisjoint(executed[1]), "a request was executed by both processes"
        assert executed[0] | executed[1] == set(ids)
        assert sum(o["sign_calls"] for o in outputs) == requests_count  # the backend signed once per request
        for i, request_id in enumerate(ids):
            body = status(http, request_id)
            assert body["status"] == "EXECUTED", body
            _verify(key["json"]["publicKey"], body["result"], f"payload {i}".encode())
