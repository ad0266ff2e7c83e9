"""Timelocks and timeouts with a clock the test moves; the scheduler (every 0.1 s here) executes
approved requests whose timelock passed and expires timed-out ones. This module has its own server:
moving its clock does not disturb the other modules."""

from __future__ import annotations

import base64

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsmgate.domain.clock import ManualClock
from hsmgate.domain.ska.approval_token import ApprovalToBeSigned
from tests.helpers import assert_tsb_error, unique
from tests.domain.ska.helpers import (
    Approver,
    approve,
    create_key,
    policy,
    rule,
    sign_request,
    status,
    task_of,
    tasks,
    token,
    wait_status,
)


def test_timelock_waits_then_the_scheduler_executes(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ec")
    label = unique("ska-timelock")
    key = create_key(http, label, policy(rule(token((1, [approver]), timelock=120, timeout=600))))
    request_id = sign_request(http, label)
    assert approve(http, approver, clock, request_id).status_code == 200
    approved = status(http, request_id)
    assert approved["status"] == "APPROVED" and approved["approvedBy"] == [approver.b64]
    clock.advance(60)
    assert wait_status(http, request_id, "APPROVED", timeout=0.5)["result"] is None
    clock.advance(61)
    done = wait_status(http, request_id, "EXECUTED")
    public = serialization.load_der_public_key(base64.b64decode(key["json"]["publicKey"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(done["result"]), b"Some Payload", ec.ECDSA(hashes.SHA256()))


def test_timeout_expires_the_request(http: httpx.Client, clock: ManualClock) -> None:
    one, two = Approver("ec"), Approver("ed25519")
    label = unique("ska-timeout")
    create_key(http, label, policy(rule(token((2, [one, two]), timeout=300))))
    request_id = sign_request(http, label)
    assert approve(http, one, clock, request_id).status_code == 200
    late_task = task_of(http, two, clock, request_id)
    clock.advance(301)
    expired = wait_status(http, request_id, "EXPIRED")
    assert expired["approvedBy"] == [one.b64] and expired["result"] is None
    assert tasks(http, two, clock, requestId=request_id) == []
    assert_tsb_error(http.post("/v1/approval", json=two.send_approval(late_task)), 652, 404)


def test_fulfilled_before_timelock_but_past_timeout_expires(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ec")
    label = unique("ska-lock-beyond")
    create_key(http, label, policy(rule(token((1, [approver]), timelock=600, timeout=300))))
    request_id = sign_request(http, label)
    assert approve(http, approver, clock, request_id).status_code == 200
    assert status(http, request_id)["status"] == "APPROVED"
    clock.advance(301)
    wait_status(http, request_id, "EXPIRED")


def test_the_shorter_timelock_of_two_tokens_wins(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ec")
    label = unique("ska-two-locks")
    create_key(http, label, policy(rule(token((1, [approver]), name="slow", timelock=600),
                                        token((1, [approver]), name="fast", timelock=60))))
    request_id = sign_request(http, label)
    assert approve(http, approver, clock, request_id).status_code == 200
    clock.advance(61)
    wait_status(http, request_id, "EXECUTED")


def test_tokens_without_time_limits_are_time_less(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ec")
    label = unique("ska-timeless")
    create_key(http, label, policy(rule(token((1, [approver])))))
    request_id = sign_request(http, label)
    task = tasks(http, approver, clock, requestId=request_id, detailLevel="level4")[0]
    decoded = ApprovalToBeSigned.decode(base64.b64decode(task["approvalToBeSigned"]))
    assert decoded.is_time_less and decoded.label == "" and decoded.payload == b"Some Payload"
    assert task["timestamp"] is None and task["timestampSignatureAlgorithm"] is None
    clock.advance(24 * 3600)  # never expires
    assert http.post("/v1/approval", json=approver.send_approval(task)).status_code == 200
    assert status(http, request_id)["status"] == "EXECUTED"


def test_approval_after_the_timelock_executes_at_once(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("rsa")
    label = unique("ska-late")
    create_key(http, label, policy(rule(token((1, [approver]), timelock=60, timeout=600))))
    request_id = sign_request(http, label)
    clock.advance(120)
    assert approve(http, approver, clock, request_id).status_code == 200
    assert status(http, request_id)["status"] == "EXECUTED"
