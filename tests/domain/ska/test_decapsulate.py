"""Asynchronous ML-KEM decapsulation (``POST /v1/decapsulate``, wave-2 reference §4.3): 201 with a
``decapsulationRequestId``; the shared secret is the request's ``result``. A key without policy runs
at once; a key with one waits for its ``ruleUse`` approvals (EkaOperation 1, like sign and decrypt,
the ciphertext as the token payload). Every secret is checked against an independent
encapsulation by ``cryptography`` (OpenSSL)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem

from hsmgate.domain.clock import ManualClock
from hsmgate.domain.ska.approval_token import ApprovalToBeSigned, Operation, Tag
from tests.helpers import assert_tsb_error, b64, unique
from tests.domain.ska.helpers import Approver, policy, rule, status, task_of, tasks, token

#: The attributes the TSB's Go client gives its ML-KEM keys (``testPostQuantumWrapKeyAttributes``).
GO_CLIENT_ATTRIBUTES = {"decrypt": False, "encrypt": False, "destroyable": True, "extractable": True,
                        "sign": False, "unwrap": True, "verify": False, "wrap": True}
SKA_ATTRIBUTES = {**GO_CLIENT_ATTRIBUTES, "extractable": False}  # SKA keys never leave the partition


def create_kem_key(http: httpx.Client, label: str, key_policy: dict[str, Any] | None, attributes: dict[str, Any],
                   **extra: Any) -> mlkem.MLKEM768PublicKey:
    response = http.post("/v1/key", json={"label": label, "algorithm": "ML-KEM-768", "attributes": attributes,
                                          "policy": key_policy, **extra})
    assert response.status_code == 201, response.text
    public = serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))
    assert isinstance(public, mlkem.MLKEM768PublicKey)
    return public


def submit(http: httpx.Client, label: str, ciphertext: bytes, **extra: Any) -> httpx.Response:
    return http.post("/v1/decapsulate", json={"decapsulationRequest": {
        "decapsulationKeyName": label, "ciphertext": b64(ciphertext), **extra}, "requestSignature": None})


def request_id(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"decapsulationRequestId"}
    return str(response.json()["decapsulationRequestId"])


def test_without_policy_the_request_executes_at_once(http: httpx.Client) -> None:
    label = unique("kem-async")
    public = create_kem_key(http, label, None, GO_CLIENT_ATTRIBUTES, password="kem-pw")
    shared, ciphertext = public.encapsulate()  # cryptography: (shared secret, ciphertext)
    assert_tsb_error(submit(http, label, ciphertext), 620, 400)  # the password is checked when the request is made
    identifier = request_id(submit(http, label, ciphertext, keyPassword=list("kem-pw"),
                                   metaData=b64(b'{"type":"Decapsulate"}'), metaDataSignature=None))
    done = status(http, identifier)
    assert done["id"] == identifier and done["status"] == "EXECUTED"
    assert base64.b64decode(done["result"]) == shared


def test_refused_before_it_is_stored(http: httpx.Client) -> None:
    label = unique("kem-async-refused")
    create_kem_key(http, label, None, GO_CLIENT_ATTRIBUTES)
    assert_tsb_error(submit(http, label, bytes(100)), 612, 400)  # not an ML-KEM-768 ciphertext
    signer = unique("ec-not-kem")
    assert http.post("/v1/key", json={"label": signer, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                      "attributes": {"sign": True, "decrypt": False, "unwrap": False}}
                     ).status_code == 201
    assert_tsb_error(submit(http, signer, bytes(1088)), 607, 400)
    assert_tsb_error(submit(http, unique("missing"), bytes(1088)), 650, 404)
    response = http.post("/v1/decapsulate", json={"decapsulationRequest": {"decapsulationKeyName": label}})
    assert_tsb_error(response, 600, 400)  # ciphertext is required


@pytest.mark.parametrize("timeout", [0, 600], ids=["time-less", "timed"])
def test_with_policy_the_approvers_decide(http: httpx.Client, clock: ManualClock,
                                          approvers: dict[str, list[Approver]], timeout: int) -> None:
    approver = approvers["ec"][0]
    label = unique("kem-ska")
    public = create_kem_key(http, label, policy(rule(token((1, [approver]), timeout=timeout))), SKA_ATTRIBUTES)
    shared, ciphertext = public.encapsulate()
    # the key's ruleUse needs approvals: no synchronous use without them
    assert_tsb_error(http.post("/v1/synchronousDecapsulate", json={"decapsulationRequest": {
        "decapsulationKeyName": label, "ciphertext": b64(ciphertext)}}), 401, 400)
    identifier = request_id(submit(http, label, ciphertext, metaData=b64(b"shown to approvers")))
    pending = status(http, identifier)
    assert pending["status"] == "PENDING" and pending["result"] is None
    assert pending["notYetApprovedBy"] == [approver.b64]

    task = task_of(http, approver, clock, identifier, kind="Decapsulate")
    assert [t["id"] for t in tasks(http, approver, clock, kind="All", requestId=identifier)] == [task["id"]]
    assert tasks(http, approver, clock, kind="Decrypt", requestId=identifier) == []
    challenge = ApprovalToBeSigned.decode(base64.b64decode(task["approvalToBeSigned"]))
    assert challenge.operation is Operation.USE and challenge.payload_tag is Tag.EKA_SIGN_PAYLOAD
    assert challenge.payload == ciphertext and challenge.is_time_less is (timeout == 0)
    detailed = tasks(http, approver, clock, kind="Decapsulate", requestId=identifier, detailLevel="level3")[0]
    assert detailed["metaData"] == b64(b"shown to approvers") and detailed["payload"] == b64(ciphertext)
    envelope = detailed["signedDecapsulationRequest"]
    assert envelope["decapsulationRequest"]["decapsulationKeyName"] == label
    assert envelope["decapsulationRequest"]["keyPassword"] is None
    assert detailed["signedDecryptRequest"] is None and detailed["signedSignRequest"] is None

    assert http.post("/v1/approval", json=approver.send_approval(task)).status_code == 200
    done = status(http, identifier)
    assert done["status"] == "EXECUTED" and done["approvedBy"] == [approver.b64]
    assert base64.b64decode(done["result"]) == shared


def test_a_blocked_key_refuses_the_request(http: httpx.Client, approvers: dict[str, list[Approver]]) -> None:
    label = unique("kem-blocked")
    public = create_kem_key(http, label, policy(None, unblock=rule(token((1, [approvers["rsa"][0]]))),
                                                blocked=False), SKA_ATTRIBUTES)
    assert http.post("/v1/synchronousBlock", json={"blockRequest": {"blockKeyName": label}}).status_code == 200
    _shared, ciphertext = public.encapsulate()
    assert_tsb_error(submit(http, label, ciphertext), 614, 400)
