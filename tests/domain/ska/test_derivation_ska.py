"""A derivation master's SKA policy governs its children (reference wave 2 §1.1): a child's private
use needs the master's approvals, synchronously (401) and through an approved ``/v1/sign`` request
on ``<master>/<path>``; the child reports the master's policy."""

from __future__ import annotations

import base64
import hashlib

import coincurve
import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsmgate.domain.clock import ManualClock
from tests.helpers import assert_tsb_error, b64, unique
from tests.domain.ska.helpers import (
    Approver,
    policy,
    rule,
    sign_request,
    tasks,
    token,
    wait_status,
)

SECP256K1 = "1.3.132.0.10"


def test_children_of_an_ska_master_need_its_approvals(http: httpx.Client, clock: ManualClock) -> None:
    approver = Approver("ec")
    master = unique("ska-master")
    created = http.post("/v1/importedKey", json={
        "label": master, "seed": b64(bytes(range(32))), "curveOid": SECP256K1, "addressFormat": {"format": "BTC"},
        "attributes": {"sign": True, "decrypt": False, "unwrap": False, "derive": True, "bip32": True},
        "policy": policy(rule(token((1, [approver]), timeout=600)))})
    assert created.status_code == 201, created.text
    child = f"{master}/44'/0'/0'/0/0"
    described = http.post("/v1/key/attributes", json={"label": child}).json()["json"]
    assert described["policy"]["ruleUse"] is not None
    assert described["addressTruncated"]["format"] == "BTC"
    assert_tsb_error(http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(b"pay"), "signKeyName": child, "signatureAlgorithm": "SHA256_WITH_ECDSA"}}), 401, 400)
    request_id = sign_request(http, child, b"pay")
    task = tasks(http, approver, clock, requestId=request_id)[0]
    assert http.post("/v1/approval", json=approver.send_approval(task)).status_code == 200
    done = wait_status(http, request_id, "EXECUTED")
    public = serialization.load_der_public_key(base64.b64decode(described["publicKey"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(done["result"]), b"pay", ec.ECDSA(hashes.SHA256()))

    # BIP-340 with a BIP-86 tweak through an approved request: the fields travel with the request
    sighash = hashlib.sha256(b"taproot").digest()
    request_id = sign_request(http, child, sighash, algorithm="NONE_WITH_EC_SCHNORR_BIP0340", merkleRootData="")
    task = tasks(http, approver, clock, requestId=request_id)[0]
    assert http.post("/v1/approval", json=approver.send_approval(task)).status_code == 200
    done = wait_status(http, request_id, "EXECUTED")
    internal = public.public_numbers().x.to_bytes(32, "big")
    tag = hashlib.sha256(b"TapTweak").digest()
    output = coincurve.PublicKeyXOnly(internal)
    output.tweak_add(hashlib.sha256(tag + tag + internal).digest())
    assert output.verify(base64.b64decode(done["result"]), sighash)
