"""The SKA workflow over HTTP (reference §6.9): SKA keys, asynchronous requests, approval tasks,
approvals by approvers of every key type (one driven only by the OpenSSL CLI), quorum, rejection,
cancellation, block / unblock / modify and ``signedApprovals``."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from Crypto.Hash import RIPEMD160, keccak
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from hsmgate.domain.clock import ManualClock
from hsmgate.domain.ska.approval_token import ApprovalToBeSigned, HsmTimestamp, Operation, Tag
from hsmgate.domain.ska.policy import Policy, binary_policy
from tests.helpers import assert_tsb_error, b64, unique
from tests.domain.ska.helpers import (
    ED25519,
    OPENSSL,
    SECP256K1,
    Approver,
    OpenSslApprover,
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

PAYLOAD = b"Some Payload"


def public_key(key_json: dict[str, Any]) -> Any:
    return serialization.load_der_public_key(base64.b64decode(key_json["json"]["publicKey"]))


def verify(key_json: dict[str, Any], signature_b64: str, payload: bytes = PAYLOAD) -> None:
    """Raises InvalidSignature unless the request's result is the key's signature of ``payload``."""
    key = public_key(key_json)
    signature = base64.b64decode(signature_b64)
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, payload)
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())


def timestamp_key(http: httpx.Client) -> ec.EllipticCurvePublicKey:
    response = http.get("/v1/key/timestamp-key/attributes")
    assert response.status_code == 200, response.text
    body = response.json()["json"]
    assert body["algorithm"] == "EC" and body["curveOid"] == "1.2.840.10045.3.1.7"
    key = serialization.load_der_public_key(base64.b64decode(body["publicKey"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


# -- full round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "algorithm", "curve", "signature_algorithm"), [
    ("rsa", "EC", SECP256K1, "SHA256_WITH_ECDSA"),
    ("ec", "ED", ED25519, "EDDSA"),
    ("ed25519", "RSA", None, "SHA256_WITH_RSA"),
])
def test_round_trip_with_each_approver_key_type(http: httpx.Client, clock: ManualClock,
                                                approvers: dict[str, list[Approver]], kind: str, algorithm: str,
                                                curve: str | None, signature_algorithm: str) -> None:
    approver = approvers[kind][0]
    label = unique(f"ska-{kind}")
    key = create_key(http, label, policy(rule(token((1, [approver]), timeout=3600))), algorithm=algorithm,
                     curve=curve)
    assert key["json"]["policy"]["ruleUse"]["tokens"][0]["groups"][0]["approvals"][0]["value"] == approver.b64
    assert key["json"]["attributes"]["extractable"] is False
    request_id = sign_request(http, label, algorithm=signature_algorithm, metaData=b64(b"shown to approvers"))
    pending = status(http, request_id)
    assert pending["status"] == "PENDING" and pending["notYetApprovedBy"] == [approver.b64]
    assert pending["approvedBy"] == [] and pending["rejectedBy"] == [] and pending["result"] is None

    task = task_of(http, approver, clock, request_id)
    assert set(task) == {"detailLevel", "id", "approvalToBeSigned", "approverPublicKey"}
    assert task["detailLevel"] == "level1" and task["approverPublicKey"] == approver.b64
    decoded = ApprovalToBeSigned.decode(base64.b64decode(task["approvalToBeSigned"]))
    assert decoded.operation is Operation.USE and decoded.label == label and decoded.payload == PAYLOAD
    stamp = decoded.hsm_timestamp
    assert stamp is not None and stamp.key_name == "timestamp-key" and stamp.payload == PAYLOAD
    assert abs((stamp.moment - clock.now()).total_seconds()) < 5
    assert decoded.timestamp is not None and decoded.timestamp_signature is not None
    timestamp_key(http).verify(decoded.timestamp_signature, decoded.timestamp, ec.ECDSA(hashes.SHA256()))

    response = http.post("/v1/approval", json=approver.send_approval(task))
    assert response.status_code == 200, response.text
    done = status(http, request_id)
    assert done["status"] == "EXECUTED", done
    assert done["approvedBy"] == [approver.b64] and done["notYetApprovedBy"] == []
    assert done["executionTime"].endswith("Z")
    verify(key, done["result"])
    assert tasks(http, approver, clock, requestId=request_id) == []  # approved: no longer listed


@pytest.mark.subprocess
@pytest.mark.skipif(OPENSSL is None, reason="needs the OpenSSL CLI")
def test_approver_driven_only_by_the_openssl_cli(http: httpx.Client, clock: ManualClock, tmp_path: Path) -> None:
    approver = OpenSslApprover(tmp_path)
    label = unique("ska-openssl")
    key = create_key(http, label, policy(rule(token((1, [approver]), timeout=600))))
    request_id = sign_request(http, label)
    task = task_of(http, approver, clock, request_id)  # timestamp "…+00:00" signed by openssl dgst
    token_file = tmp_path / "token.b64"
    token_file.write_text(task["approvalToBeSigned"])
    # echo -n $APPROVAL_TO_BE_SIGNED | openssl enc -base64 -d -A | openssl dgst -sha256 -sign approver.key | base64
    decoded = approver._run("enc", "-base64", "-d", "-A", "-in", str(token_file))
    signature = approver.sign(decoded)
    response = http.post("/v1/approval", json={
        "id": task["id"], "approvalToBeSigned": task["approvalToBeSigned"], "signature": b64(signature),
        "approvalDigestAlgorithm": "SHA-256", "approverPublicKey": approver.b64})
    assert response.status_code == 200, response.text
    verify(key, status(http, request_id)["result"])


def test_certificate_approver(http: httpx.Client, clock: ManualClock) -> None:
    """An approver given as a certificate in the policy and in the approval."""
    approver = Approver("ec", "cert-approver")
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "officer1@example.com")])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(approver.key.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
                   .sign(approver.key, hashes.SHA256()))
    der = certificate.public_bytes(serialization.Encoding.DER)
    label = unique("ska-cert")
    key_policy = policy({"tokens": [{"name": "T", "timelock": 0, "timeout": 0, "groups": [
        {"name": "G", "quorum": 1, "approvals": [{"type": "certificate", "value": b64(der)}]}]}]})
    key = create_key(http, label, key_policy)
    request_id = sign_request(http, label)
    stamp = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    found = http.post("/v1/filteredAllApprovalTask", json={
        "timestamp": stamp, "timestampSignature": b64(approver.sign(stamp.encode())),
        "approverCertificate": b64(der), "timestampDigestAlgorithm": "SHA-256", "requestId": request_id}).json()["tasks"]
    assert len(found) == 1 and found[0]["approverPublicKey"] == approver.b64  # SPKI of the certificate
    body = approver.send_approval(found[0])
    del body["approverPublicKey"]
    body["approverCertificate"] = b64(der)
    assert http.post("/v1/approval", json=body).status_code == 200
    done = status(http, request_id)
    assert done["approvedBy"] == [approver.b64]
    verify(key, done["result"])


# -- quorum, replay, strangers ------------------------------------------------------------------------


def test_quorum_two_of_three_across_two_groups(http: httpx.Client, clock: ManualClock,
                                               approvers: dict[str, list[Approver]]) -> None:
    finance = [approvers["rsa"][1], approvers["ec"][1], approvers["ed25519"][1]]
    security = [approvers["ec"][2], approvers["ed25519"][2]]
    label = unique("ska-quorum")
    key = create_key(http, label, policy(rule(token((2, finance), (1, security), timeout=3600))))
    request_id = sign_request(http, label)
    assert sorted(status(http, request_id)["notYetApprovedBy"]) == sorted(a.b64 for a in finance + security)

    assert approve(http, finance[0], clock, request_id).status_code == 200
    assert approve(http, security[0], clock, request_id).status_code == 200
    partial = status(http, request_id)
    assert partial["status"] == "PENDING", partial  # Group1 has 1 of 2
    assert sorted(partial["approvedBy"]) == sorted([finance[0].b64, security[0].b64])

    assert approve(http, finance[2], clock, request_id).status_code == 200
    done = status(http, request_id)
    assert done["status"] == "EXECUTED", done
    assert sorted(done["approvedBy"]) == sorted([finance[0].b64, security[0].b64, finance[2].b64])
    assert sorted(done["notYetApprovedBy"]) == sorted([finance[1].b64, security[1].b64])
    verify(key, done["result"])


def test_tokens_are_alternatives(http: httpx.Client, clock: ManualClock,
                                 approvers: dict[str, list[Approver]]) -> None:
    first, second = approvers["ec"][0], approvers["ed25519"][0]
    label = unique("ska-or")
    key = create_key(http, label, policy(rule(token((1, [first]), name="A", timeout=600),
                                              token((1, [second]), name="B", timeout=600))))
    request_id = sign_request(http, label)
    assert approve(http, second, clock, request_id).status_code == 200
    verify(key, status(http, request_id)["result"])


def test_replayed_and_foreign_approvals_are_refused(http: httpx.Client, clock: ManualClock,
                                                    approvers: dict[str, list[Approver]]) -> None:
    one, two = approvers["ec"][0], approvers["rsa"][0]
    stranger = Approver("ed25519", "stranger")
    label = unique("ska-replay")
    create_key(http, label, policy(rule(token((2, [one, two]), timeout=3600))))
    first, second = sign_request(http, label), sign_request(http, label)

    task_one_first = task_of(http, one, clock, first)
    old_approval = one.send_approval(task_one_first)
    assert http.post("/v1/approval", json=old_approval).status_code == 200
    # the same approval again: an approver counts once
    assert_tsb_error(http.post("/v1/approval", json=old_approval), 615, 400)
    assert status(http, first)["status"] == "PENDING"

    # the first request's (valid) approval presented for the second request's task
    task_one_second = task_of(http, one, clock, second)
    foreign = {**old_approval, "id": task_one_second["id"]}
    assert_tsb_error(http.post("/v1/approval", json=foreign), 403, 400)
    # a signature over another token with this request's token
    forged = {**one.send_approval(task_one_second), "signature": old_approval["signature"]}
    assert_tsb_error(http.post("/v1/approval", json=forged), 403, 400)
    # another approver's task, and an approver who is not in the policy
    assert_tsb_error(http.post("/v1/approval", json={**two.send_approval(task_one_second)}), 415, 403)
    assert_tsb_error(http.post("/v1/approval", json=stranger.send_approval(task_one_second)), 415, 403)
    assert tasks(http, stranger, clock, requestId=second) == []
    # wrong digest for the key type, unknown task
    assert_tsb_error(http.post("/v1/approval", json={**one.send_approval(task_one_second),
                                                     "approvalDigestAlgorithm": "MD5"}), 600, 400)
    assert_tsb_error(
        http.post("/v1/approval", json={**one.send_approval(task_one_second), "id": "nope"}), 652, 404)
    assert status(http, second)["approvedBy"] == []


def test_task_fetch_authentication(http: httpx.Client, clock: ManualClock,
                                   approvers: dict[str, list[Approver]]) -> None:
    approver = approvers["ec"][0]
    auth = approver.authentication(clock.now())
    bad_signature = {**auth, "timestampSignature": approvers["ec"][1].authentication(clock.now())["timestampSignature"]}
    assert_tsb_error(http.post("/v1/filteredSignApprovalTask", json=bad_signature), 403, 400)
    import datetime as dt

    stale = approver.authentication(clock.now() - dt.timedelta(seconds=601))
    assert_tsb_error(http.post("/v1/filteredSignApprovalTask", json=stale), 404, 400)
    future = approver.authentication(clock.now() + dt.timedelta(seconds=5))
    assert_tsb_error(http.post("/v1/filteredSignApprovalTask", json=future), 404, 400)
    assert_tsb_error(
        http.post("/v1/filteredSignApprovalTask", json={**auth, "timestamp": "yesterday"}), 600, 400)
    no_approver = {k: v for k, v in auth.items() if k != "approverPublicKey"}
    assert_tsb_error(http.post("/v1/filteredSignApprovalTask", json=no_approver), 600, 400)
    assert_tsb_error(http.post("/v1/filteredSignApprovalTask",
                               json={**auth, "timestampSigningCertificate": b64(b"\x30\x00")}), 405, 400)
    ok = http.post("/v1/filteredSignApprovalTask", json={**approver.authentication(clock.now()), "paging": {
        "pageNumber": 0, "pageSize": 1, "sortOrder": "CREATION_DATE_ASC"}})
    assert ok.status_code == 200, ok.text


# -- detail levels and paging ---------------------------------------------------------------------------

LEVEL_FIELDS = {
    1: {"detailLevel", "id", "approvalToBeSigned", "approverPublicKey"},
    2: {"metaData", "metaDataSignature", "payload", "payloadType"},
    3: {"requestBase64", "signedSignRequest", "signedModifyKeyRequest", "signedBlockKeyRequest",
        "signedUnblockKeyRequest", "signedDecryptRequest", "signedUnwrapKeyRequest",
        "signedCertificateRequestRequest", "signedSignCertificateRequest", "signedSelfSignCertificateRequestDto"},
    4: {"timestamp", "timestampSignature", "timestampSignatureAlgorithm", "timestampSignatureWithAlgorithm"},
    5: {"keyAttributes", "keyAttributesSignature"},
    6: {"requestStatus"},
}


def test_detail_levels(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ec", "levels")
    label = unique("ska-levels")
    create_key(http, label, policy(rule(token((1, [approver]), timeout=600))))
    request_id = sign_request(http, label, metaData=b64(b"meta"), metaDataSignature=b64(b"meta-sig"),
                              payloadType="ETH")
    expected: set[str] = set()
    for level in range(1, 7):
        expected |= LEVEL_FIELDS[level]
        task = tasks(http, approver, clock, requestId=request_id, detailLevel=f"level{level}")[0]
        assert set(task) == expected, (level, set(task) ^ expected)
    assert task["detailLevel"] == "level6" and task["metaData"] == b64(b"meta")
    assert task["metaDataSignature"] == b64(b"meta-sig") and task["payloadType"] == "ETH"
    assert task["payload"] == b64(PAYLOAD)
    envelope = task["signedSignRequest"]
    assert envelope["signRequest"]["signKeyName"] == label and envelope["requestSignature"] is None
    assert envelope["signRequest"]["keyPassword"] is None
    assert base64.b64decode(task["requestBase64"]).decode().startswith('{"signRequest":{"payload":')
    assert task["signedBlockKeyRequest"] is None
    decoded = ApprovalToBeSigned.decode(base64.b64decode(task["approvalToBeSigned"]))
    assert base64.b64decode(task["timestamp"]) == decoded.timestamp
    assert base64.b64decode(task["timestampSignature"]) == decoded.timestamp_signature
    assert base64.b64decode(task["timestampSignatureWithAlgorithm"]) == decoded.timestamp_signature_der
    assert task["timestampSignatureAlgorithm"] == "SHA256_WITH_ECDSA"
    assert "<policy>" in task["keyAttributes"] and f"<label>{label}</label>" in task["keyAttributes"]
    assert task["requestStatus"]["id"] == request_id and task["requestStatus"]["status"] == "PENDING"


def test_paging_and_sort_orders(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ed25519", "pager")
    label = unique("ska-paging")
    create_key(http, label, policy(rule(token((1, [approver]), timeout=600))))
    ids = [sign_request(http, label, payload=bytes([i])) for i in range(3)]
    by_request = {t["id"]: t for t in tasks(http, approver, clock, detailLevel="level6")}
    order = [next(t for t in by_request.values() if t["requestStatus"]["id"] == rid)["id"] for rid in ids]

    def page(number: int, size: int, sort: str) -> list[str]:
        found = tasks(http, approver, clock, paging={"pageNumber": number, "pageSize": size, "sortOrder": sort})
        return [t["id"] for t in found]

    assert page(0, 2, "CREATION_DATE_ASC") == order[:2]
    assert page(1, 2, "CREATION_DATE_ASC") == order[2:]
    assert page(0, 3, "CREATION_DATE_DESC") == order[::-1]
    # LAST_FETCHED_DATE: each fetch moves the returned task to the end of the ascending order
    clock.advance(1)
    seen = []
    for _ in range(3):
        clock.advance(1)
        seen += page(0, 1, "LAST_FETCHED_DATE_ASC")
    assert sorted(seen) == sorted(order)
    assert page(0, 1, "LAST_FETCHED_DATE_DESC") == [seen[-1]]
    assert_tsb_error(
        http.post("/v1/filteredSignApprovalTask", json={**approver.authentication(clock.now()), "paging": {
            "pageNumber": 0, "pageSize": 0}}), 600, 400)


# -- rejection, cancellation, key deletion ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["DELETE", "POST"])
def test_reject_through_task(http: httpx.Client, clock: ManualClock, method: str) -> None:
    one, two = Approver("ec"), Approver("ed25519")
    label = unique("ska-reject")
    create_key(http, label, policy(rule(token((2, [one, two]), timeout=600))))
    request_id = sign_request(http, label)
    task = task_of(http, one, clock, request_id)
    response = http.request(method, "/v1/task", json={**one.authentication(clock.now()), "id": task["id"]})
    assert response.status_code == 200, response.text
    rejected = status(http, request_id)
    assert rejected["status"] == "REJECTED" and rejected["rejectedBy"] == [one.b64]
    assert rejected["notYetApprovedBy"] == [two.b64]
    assert tasks(http, two, clock, requestId=request_id) == []
    # someone else's task, an unknown task
    other = sign_request(http, label)
    assert_tsb_error(http.request(method, "/v1/task", json={**two.authentication(clock.now()),
                                                            "id": task_of(http, one, clock, other)["id"]}), 415, 403)
    assert_tsb_error(
        http.request(method, "/v1/task", json={**one.authentication(clock.now()), "id": "x"}), 652, 404)


def test_cancel_request(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ec")
    label = unique("ska-cancel")
    create_key(http, label, policy(rule(token((1, [approver]), timeout=600))))
    request_id = sign_request(http, label)
    task = task_of(http, approver, clock, request_id)
    assert http.delete(f"/v1/request/{request_id}").status_code == 200
    assert status(http, request_id)["status"] == "CANCELLED"
    assert http.delete(f"/v1/request/{request_id}").status_code == 200  # idempotent
    assert tasks(http, approver, clock, requestId=request_id) == []
    assert_tsb_error(http.post("/v1/approval", json=approver.send_approval(task)), 652, 404)
    assert_tsb_error(http.get("/v1/request/6947856a-e3a1-44cf-bb99-bbd2995642ca"), 651, 404)
    assert_tsb_error(http.delete("/v1/request/6947856a-e3a1-44cf-bb99-bbd2995642ca"), 651, 404)
    listed = http.post("/v1/filteredRequests", json={"requestStatusList": ["CANCELLED"]}).json()["requests"]
    assert request_id in [r["id"] for r in listed] and all(r["status"] == "CANCELLED" for r in listed)
    assert_tsb_error(http.post("/v1/filteredRequests", json={"requestStatusList": ["NOPE"]}), 600, 400)


def test_deleting_the_key_cancels_its_requests(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ec")
    label = unique("ska-delete")
    create_key(http, label, policy(rule(token((1, [approver]), timeout=600))))
    first, second = sign_request(http, label), sign_request(http, label)
    assert http.delete(f"/v1/key/{label}").status_code == 200
    assert status(http, first)["status"] == status(http, second)["status"] == "CANCELLED"


def test_an_executed_request_is_not_cancelled_but_its_result_is_erased(http: httpx.Client) -> None:
    """DELETE of an EXECUTED request: it stays EXECUTED, its result is gone (domain/ska/results.py)."""
    label = unique("plain")
    key = create_key(http, label, None)
    request_id = sign_request(http, label)
    done = status(http, request_id)  # a key without policy executes at once
    assert done["status"] == "EXECUTED" and done["approvedBy"] == [] and done["notYetApprovedBy"] == []
    verify(key, done["result"])
    assert http.delete(f"/v1/request/{request_id}").status_code == 200
    erased = status(http, request_id)
    assert erased["status"] == "EXECUTED" and erased["result"] is None


# -- keys: creation rules, empty policies ----------------------------------------------------------------


def test_empty_and_always_fulfilled_policies_execute_at_once(http: httpx.Client) -> None:
    for key_policy in (policy(), policy(rule()), policy(rule({"name": "open", "timelock": 0, "timeout": 0}))):
        label = unique("ska-open")
        key = create_key(http, label, key_policy)
        done = status(http, sign_request(http, label))
        assert done["status"] == "EXECUTED"
        verify(key, done["result"])
        signed = http.post("/v1/synchronousSign", json={"signRequest": {
            "payload": b64(PAYLOAD), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
        assert signed.status_code == 200, signed.text


def test_ska_key_rules(http: httpx.Client, approvers: dict[str, list[Approver]]) -> None:
    approver = approvers["ec"][0]
    key_policy = policy(rule(token((1, [approver]))))

    def create(**body: Any) -> httpx.Response:
        return http.post("/v1/key", json={"label": unique("rules"), "attributes": dict(
            {"sign": True, "decrypt": False, "unwrap": False}, **body.pop("attributes", {})), **body})

    assert_tsb_error(create(algorithm="AES", keySize=256, policy=key_policy), 613, 400)
    assert_tsb_error(
        create(algorithm="EC", curveOid=SECP256K1, policy=key_policy, attributes={"extractable": True}),
            606, 400)
    assert_tsb_error(
        create(algorithm="EC", curveOid=SECP256K1, policy=key_policy, addressFormat={"format": "XLM"}),
            605, 400)
    assert_tsb_error(create(algorithm="EC", curveOid="1.2.840.10045.3.1.7", policy=key_policy,
                            addressFormat={"format": "ETH"}), 613, 400)
    assert_tsb_error(create(algorithm="EC", curveOid=SECP256K1, addressFormat={"format": "ETH"}), 630, 400)
    bad = policy(rule(token((1, [approver]), timelock=61)))
    assert "full minutes" in assert_tsb_error(
        create(algorithm="EC", curveOid=SECP256K1, policy=bad), 600, 400)["message"]
    assert_tsb_error(create(algorithm="EC", curveOid=SECP256K1, policy={"ruleUse": None}), 600, 400)
    assert_tsb_error(create(algorithm="EC", curveOid=SECP256K1, policy=policy(blocked=True)), 600, 400)


@pytest.mark.parametrize("address_format", ["ETH", "BTC"])
def test_addresses(http: httpx.Client, address_format: str) -> None:
    label = unique(f"ska-{address_format}")
    key = create_key(http, label, policy(), curve=SECP256K1, addressFormat={"format": address_format})
    point = public_key(key)
    if address_format == "ETH":
        raw = point.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        expected = keccak.new(digest_bits=256, data=raw[1:]).digest()[-20:]
    else:
        raw = point.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        expected = RIPEMD160.new(hashlib.sha256(raw).digest()).digest()
    assert key["json"]["addressTruncated"] == {"address": expected.hex().upper(), "format": address_format}
    assert f'<address_truncated format="{address_format}">{expected.hex().upper()}</address_truncated>' in key["xml"]
    assert http.post("/v1/key/address", json={"label": label}).json()["address"] == b64(expected)
    deprecated = http.get(f"/v1/key/{label}/address")  # the deprecated form (no password)
    assert deprecated.status_code == 200 and deprecated.json()["address"] == b64(expected)
    plain = unique("plain")
    create_key(http, plain, None, curve=SECP256K1)
    assert_tsb_error(http.post("/v1/key/address", json={"label": plain}), 630, 400)
    assert_tsb_error(http.get(f"/v1/key/{plain}/address"), 630, 400)
    assert_tsb_error(http.get(f"/v1/key/{unique('missing')}/address"), 650, 404)
    # a 300-character label: no key can have it (610); the path parameter admits 640 for derivation paths
    assert_tsb_error(http.get(f"/v1/key/{'k' * 300}/address"), 610, 400)
    guarded = unique(f"ska-{address_format}-pw")
    create_key(http, guarded, policy(), curve=SECP256K1, addressFormat={"format": address_format}, password="pw")
    assert_tsb_error(http.get(f"/v1/key/{guarded}/address"), 620, 400)  # a password cannot travel in a GET
    assert http.post("/v1/key/address", json={"label": guarded, "password": "pw"}).status_code == 200


def test_policy_in_attestation(http: httpx.Client, approvers: dict[str, list[Approver]]) -> None:
    approver = approvers["rsa"][0]
    label = unique("ska-xml")
    key = create_key(http, label, policy(rule(token((1, [approver]), timelock=60, timeout=120))))
    xml = key["xml"]
    assert "\t<policy>\n\t\t<key_status>\n\t\t\t<blocked>false</blocked>" in xml
    assert f'<approval type="public_key" name="{approver.name}">{approver.b64}</approval>' in xml
    assert "<timelock>60</timelock>" in xml and "<rule_block/>" in xml
    attestation = http.get("/v1/key/attestation-key/attributes").json()["json"]["publicKey"]
    attestation_key = serialization.load_der_public_key(base64.b64decode(attestation))
    assert isinstance(attestation_key, rsa.RSAPublicKey)
    attestation_key.verify(base64.b64decode(key["xmlSignature"]), xml.encode(), padding.PKCS1v15(), hashes.SHA256())
    described = http.post("/v1/key/attributes", json={"label": label}).json()
    assert described["json"]["policy"] == key["json"]["policy"]
    assert Policy.from_wire(described["json"]["policy"]).rule_use is not None


# -- block, unblock, modify -------------------------------------------------------------------------------


def test_block_unblock_and_modify(http: httpx.Client, clock: ManualClock,
                                  approvers: dict[str, list[Approver]]) -> None:
    user, officer = approvers["ed25519"][0], approvers["rsa"][1]
    label = unique("ska-block")
    officers = rule(token((1, [officer])))  # time-less: usable with signedApprovals
    key = create_key(http, label, policy(rule(token((1, [user]), timeout=600)), block=officers, unblock=officers,
                                         modify=officers))
    pending_sign = sign_request(http, label)

    blocked = http.post("/v1/block", json={"blockRequest": {"blockKeyName": label}})
    assert blocked.status_code == 201 and set(blocked.json()) == {"blockKeyRequestId"}
    block_id = blocked.json()["blockKeyRequestId"]
    task = task_of(http, officer, clock, block_id, kind="BlockKey")
    assert ApprovalToBeSigned.decode(base64.b64decode(task["approvalToBeSigned"])).operation is Operation.BLOCK
    assert http.post("/v1/approval", json=officer.send_approval(task)).status_code == 200
    assert status(http, block_id) | {"result": "true"} == status(http, block_id)
    assert http.post("/v1/key/attributes", json={"label": label}).json()["json"]["policy"]["keyStatus"] == {
        "blocked": True}

    # a blocked key refuses every use: synchronous, asynchronous, and the pending approved request
    sync = {"signRequest": {"payload": b64(PAYLOAD), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}}
    assert_tsb_error(http.post("/v1/synchronousSign", json=sync), 614, 400)
    assert_tsb_error(http.post("/v1/sign", json=sync), 614, 400)
    assert approve(http, user, clock, pending_sign).status_code == 200
    failed = status(http, pending_sign)
    assert failed["status"] == "FAILED" and failed["result"] is None

    # unblock synchronously with a signedApproval (time-less token made by the client, §6.5)
    unblock_token = ApprovalToBeSigned.time_less(Operation.UNBLOCK, label.encode()).encode()
    wrong = http.post("/v1/synchronousUnblock", json={"unblockRequest": {
        "unblockKeyName": label, "signedApprovals": [user.signed_approval(unblock_token)]}})
    assert_tsb_error(wrong, 401, 400)  # not an approver of ruleUnblock
    assert_tsb_error(
        http.post("/v1/synchronousUnblock", json={"unblockRequest": {"unblockKeyName": label}}), 401, 400)
    done = http.post("/v1/synchronousUnblock", json={"unblockRequest": {
        "unblockKeyName": label, "signedApprovals": [officer.signed_approval(unblock_token)]}})
    assert done.status_code == 200, done.text
    assert http.post("/v1/key/attributes", json={"label": label}).json()["json"]["policy"]["keyStatus"] == {
        "blocked": False}
    request_id = sign_request(http, label)
    assert approve(http, user, clock, request_id).status_code == 200
    verify(key, status(http, request_id)["result"])

    # modify (asynchronous): the new policy's ruleUse needs the officer instead of the user
    new_rules = {"ruleUse": rule(token((1, [officer]), timeout=600)), "ruleBlock": officers,
                 "ruleUnblock": officers, "ruleModify": officers}
    modified = http.post("/v1/modify", json={"modifyRequest": {"modifyKeyName": label, "policy": new_rules}})
    assert modified.status_code == 201, modified.text
    modify_id = modified.json()["modifyKeyRequestId"]
    task = task_of(http, officer, clock, modify_id, kind="ModifyKey")
    assert base64.b64decode(task["approvalToBeSigned"]) and \
        tasks(http, officer, clock, kind="ModifyKey", requestId=modify_id, detailLevel="level2")[0]["payload"] == \
        b64(binary_policy(Policy.from_wire(new_rules, key_status=False)))
    decoded = ApprovalToBeSigned.decode(base64.b64decode(task["approvalToBeSigned"]))
    assert decoded.operation is Operation.MODIFY and decoded.payload_tag is Tag.EKA_MODIFY_PAYLOAD
    assert decoded.is_time_less  # ruleModify has no timelock/timeout
    assert http.post("/v1/approval", json=officer.send_approval(task)).status_code == 200
    assert status(http, modify_id)["status"] == "EXECUTED"
    now_policy = http.post("/v1/key/attributes", json={"label": label}).json()["json"]["policy"]
    assert now_policy["ruleUse"]["tokens"][0]["groups"][0]["approvals"][0]["value"] == officer.b64
    assert now_policy["keyStatus"] == {"blocked": False}
    request_id = sign_request(http, label)
    assert tasks(http, user, clock, requestId=request_id) == []
    assert approve(http, officer, clock, request_id).status_code == 200
    verify(key, status(http, request_id)["result"])

    # synchronous modify back, with the officer's signedApproval over the binary policy
    back = {"ruleUse": rule(token((1, [user]), timeout=600)), "ruleBlock": officers, "ruleUnblock": officers,
            "ruleModify": officers}
    modify_token = ApprovalToBeSigned.time_less(
        Operation.MODIFY, binary_policy(Policy.from_wire(back, key_status=False))).encode()
    response = http.post("/v1/synchronousModify", json={"modifyRequest": {
        "modifyKeyName": label, "policy": back, "signedApprovals": [officer.signed_approval(modify_token)]}})
    assert response.status_code == 200, response.text
    assert http.post("/v1/key/attributes", json={"label": label}).json()["json"]["policy"]["ruleUse"][
        "tokens"][0]["groups"][0]["approvals"][0]["value"] == user.b64


@pytest.mark.parametrize("unblock_rule", [{"tokens": []}, None], ids=["empty-tokens", "null"])
@pytest.mark.parametrize("unblock_path", ["/v1/synchronousUnblock", "/v1/unblock"])
def test_a_blocked_key_whose_unblock_rule_is_empty_stays_readable_and_unblockable(
        http: httpx.Client, unblock_rule: dict[str, Any] | None, unblock_path: str) -> None:
    """An empty (or null) ruleUnblock means "unblocking needs no approvals" (reference §6.1), so
    blocking such a key is allowed and the key is never stuck: it stays readable while blocked, and
    unblocking needs no approvals. (The creation rule "a key created blocked needs a ruleUnblock"
    applies to the creation request only, not to a policy read back from storage.)"""
    label = unique("ska-easy-unblock")
    key = create_key(http, label, {"ruleUse": None, "ruleBlock": None, "ruleUnblock": unblock_rule,
                                   "ruleModify": None, "keyStatus": {"blocked": False}})
    blocked = http.post("/v1/synchronousBlock", json={"blockRequest": {"blockKeyName": label}})
    assert blocked.status_code == 200, blocked.text
    described = http.post("/v1/key/attributes", json={"label": label})
    assert described.status_code == 200, described.text
    assert described.json()["json"]["policy"]["keyStatus"] == {"blocked": True}
    assert described.json()["json"]["policy"]["ruleUnblock"] == unblock_rule
    assert http.get(f"/v1/key/{label}/attributes").status_code == 200
    sync = {"signRequest": {"payload": b64(PAYLOAD), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}}
    assert_tsb_error(http.post("/v1/synchronousSign", json=sync), 614, 400)  # blocked: refused, not broken

    envelope = {"unblockRequest": {"unblockKeyName": label}}
    unblocked = http.post(unblock_path, json=envelope)
    assert unblocked.status_code in (200, 201), unblocked.text
    if unblock_path == "/v1/unblock":  # no approvals needed: executed at once
        assert status(http, unblocked.json()["unblockKeyRequestId"])["status"] == "EXECUTED"
    assert http.post("/v1/key/attributes", json={"label": label}).json()["json"]["policy"]["keyStatus"] == {
        "blocked": False}
    signed = http.post("/v1/synchronousSign", json=sync)
    assert signed.status_code == 200, signed.text
    verify(key, signed.json()["signature"])


def test_a_key_created_blocked_still_needs_a_rule_to_unblock_it(http: httpx.Client) -> None:
    response = http.post("/v1/key", json={
        "label": unique("ska-born-blocked"), "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
        "attributes": {"sign": True, "decrypt": False, "unwrap": False},
        "policy": {"ruleUse": None, "ruleBlock": None, "ruleUnblock": {"tokens": []}, "ruleModify": None,
                   "keyStatus": {"blocked": True}}})
    assert_tsb_error(response, 600, 400)


def test_management_of_a_key_without_policy_is_refused(http: httpx.Client) -> None:
    label = unique("plain")
    create_key(http, label, None)
    assert_tsb_error(http.post("/v1/block", json={"blockRequest": {"blockKeyName": label}}), 614, 400)
    assert_tsb_error(
        http.post("/v1/synchronousBlock", json={"blockRequest": {"blockKeyName": label}}), 614, 400)
    assert_tsb_error(
        http.post("/v1/block", json={"blockRequest": {"blockKeyName": unique("missing")}}), 650, 404)


# -- synchronous operations with signedApprovals -----------------------------------------------------------


def test_synchronous_sign_with_signed_approvals(http: httpx.Client, approvers: dict[str, list[Approver]]) -> None:
    one, two, stranger = approvers["ec"][0], approvers["rsa"][0], approvers["ed25519"][2]
    label = unique("ska-sync")
    key = create_key(http, label, policy(rule(token((2, [one, two])))))  # time-less
    challenge = ApprovalToBeSigned.time_less(Operation.USE, PAYLOAD).encode()

    def sign(approvals: list[str] | None, payload: bytes = PAYLOAD) -> httpx.Response:
        return http.post("/v1/synchronousSign", json={"signRequest": {
            "payload": b64(payload), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA",
            "signedApprovals": approvals}})

    assert_tsb_error(sign(None), 401, 400)
    assert_tsb_error(sign([one.signed_approval(challenge)]), 401, 400)  # 1 of 2
    assert_tsb_error(sign([one.signed_approval(challenge), one.signed_approval(challenge)]), 401, 400)  # once
    assert_tsb_error(sign([one.signed_approval(challenge), stranger.signed_approval(challenge)]), 401, 400)
    assert_tsb_error(
        sign([one.signed_approval(challenge), two.signed_approval(challenge)], b"other"), 403, 400)
    assert_tsb_error(sign([b64(b"garbage")]), 600, 400)
    response = sign([one.signed_approval(challenge), two.signed_approval(challenge)])
    assert response.status_code == 200, response.text
    verify(key, response.json()["signature"])
    # a batch checks each item's signedApprovals exactly as the single request does
    approved = [one.signed_approval(challenge), two.signed_approval(challenge)]
    other = b"another payload"
    other_approved = [one.signed_approval(ApprovalToBeSigned.time_less(Operation.USE, other).encode()),
                      two.signed_approval(ApprovalToBeSigned.time_less(Operation.USE, other).encode())]
    item = {"signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}
    batch = http.post("/v1/synchronousSignBatch", json={"signRequests": [
        {**item, "payload": b64(PAYLOAD), "signedApprovals": approved},
        {**item, "payload": b64(PAYLOAD)},  # no approvals: refused by the policy
        {**item, "payload": b64(other), "signedApprovals": other_approved},
        {**item, "payload": b64(other), "signedApprovals": approved},  # approvals of another payload
        {**item, "payload": b64(PAYLOAD), "signedApprovals": approved[:1]},  # 1 of 2
    ]})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    verify(key, results[0]["signature"])
    assert results[1]["errorCode"] == 401
    verify(key, results[2]["signature"], other)
    assert results[3]["errorCode"] == 403
    assert results[4]["errorCode"] == 401


def test_synchronous_sign_with_a_timed_approval_from_a_task(http: httpx.Client, clock: ManualClock) -> None:
    """A timed token (with the HSM timestamp) taken from a task approves the synchronous use."""
    approver = Approver("ec")
    label = unique("ska-sync-timed")
    key = create_key(http, label, policy(rule(token((1, [approver]), timeout=600))))
    request_id = sign_request(http, label)
    task = task_of(http, approver, clock, request_id)
    challenge = base64.b64decode(task["approvalToBeSigned"])
    response = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(PAYLOAD), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA",
        "signedApprovals": [approver.signed_approval(challenge)]}})
    assert response.status_code == 200, response.text
    verify(key, response.json()["signature"])
    # a timestamp the partition did not sign is refused
    decoded = ApprovalToBeSigned.decode(challenge)
    assert decoded.hsm_timestamp is not None
    stamp = HsmTimestamp(PAYLOAD, Tag.EKA_SIGN_PAYLOAD, decoded.hsm_timestamp.seconds, "timestamp-key")
    fake_key = ec.generate_private_key(ec.SECP256R1())
    forged = ApprovalToBeSigned.timed(Operation.USE, label, stamp,
                                      fake_key.sign(stamp.encode(), ec.ECDSA(hashes.SHA256()))).encode()
    refused = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(PAYLOAD), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA",
        "signedApprovals": [approver.signed_approval(forged)]}})
    assert_tsb_error(refused, 403, 400)


# -- decrypt and certificates -------------------------------------------------------------------------------


def test_asynchronous_decrypt(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ed25519")
    label = unique("ska-decrypt")
    response = http.post("/v1/key", json={"label": label, "algorithm": "RSA", "keySize": 2048, "attributes": {
        "sign": False, "decrypt": True, "unwrap": False}, "policy": policy(rule(token((1, [approver]), timeout=600)))})
    assert response.status_code == 201, response.text
    rsa_key = serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))
    assert isinstance(rsa_key, rsa.RSAPublicKey)
    secret = b"attack at dawn"
    ciphertext = rsa_key.encrypt(secret, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    body = {"decryptRequest": {"encryptedPayload": b64(ciphertext), "decryptKeyName": label,
                               "cipherAlgorithm": "RSA_PADDING_OAEP_WITH_SHA256"}}
    assert_tsb_error(http.post("/v1/synchronousDecrypt", json=body), 401, 400)
    created = http.post("/v1/decrypt", json=body)
    assert created.status_code == 201 and set(created.json()) == {"decryptRequestId"}, created.text
    request_id = created.json()["decryptRequestId"]
    assert tasks(http, approver, clock, kind="Sign", requestId=request_id) == []
    assert approve(http, approver, clock, request_id, kind="Decrypt").status_code == 200
    done = status(http, request_id)
    assert done["status"] == "EXECUTED", done
    assert base64.b64decode(done["result"]) == secret


def test_asynchronous_self_signed_certificate(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ec")
    label = unique("ska-cert")
    key = create_key(http, label, policy(rule(token((1, [approver]), timeout=600))))
    created = http.post("/v1/certificate/selfsign", json={"selfSignCertificateRequest": {
        "signKeyName": label, "validity": 30, "signatureAlgorithm": "SHA256_WITH_ECDSA", "commonName": "ska test"}})
    assert created.status_code == 201, created.text
    request_id = created.json()["signRequestId"]
    task = tasks(http, approver, clock, kind="All", requestId=request_id, detailLevel="level3")[0]
    assert task["signedSelfSignCertificateRequestDto"]["selfSignCertificateRequest"]["commonName"] == "ska test"
    assert http.post("/v1/approval", json=approver.send_approval(task)).status_code == 200
    done = wait_status(http, request_id, "EXECUTED")
    certificate = x509.load_pem_x509_certificate(done["result"].encode())
    assert certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == base64.b64decode(
        key["json"]["publicKey"])


def test_license_flags(http: httpx.Client) -> None:
    flags = http.get("/v1/licenseInfo").json()["clientFlags"]
    assert {"REST_API", "TSB_ENGINE", "KEY_AUTH"} <= set(flags)


def test_asynchronous_unwrap_with_a_key_without_policy(http: httpx.Client) -> None:
    """A key without policy: the asynchronous unwrap executes at once; its result is the new label."""
    wrapping, target, unwrapped = unique("wrapping"), unique("target"), unique("unwrapped")
    cipher = {"sign": False, "decrypt": True, "unwrap": True, "wrap": True, "encrypt": True}
    assert http.post("/v1/key", json={"label": wrapping, "algorithm": "AES", "keySize": 256,
                                      "attributes": cipher}).status_code == 201
    assert http.post("/v1/key", json={"label": target, "algorithm": "AES", "keySize": 128, "attributes": {
        **cipher, "extractable": True, "sensitive": False}}).status_code == 201
    wrapped = http.post("/v1/wrap", json={"wrapKeyRequest": {"keyToBeWrapped": target, "wrapKeyName": wrapping,
                                                             "wrapMethod": "AES_WRAP"}})
    assert wrapped.status_code == 200, wrapped.text
    created = http.post("/v1/unwrap", json={"unwrapKeyRequest": {
        "wrappedKey": wrapped.json()["wrappedKey"], "label": unwrapped, "unwrapKeyName": wrapping,
        "wrapMethod": "AES_WRAP", "attributes": {"sign": False, "decrypt": True, "unwrap": False}}})
    assert created.status_code == 201 and set(created.json()) == {"unwrapRequestId"}, created.text
    done = status(http, created.json()["unwrapRequestId"])
    assert done["status"] == "EXECUTED" and done["result"] == unwrapped
    assert unwrapped in http.get("/v1/key").json()
