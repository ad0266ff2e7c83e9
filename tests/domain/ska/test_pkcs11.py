"""The SKA workflow on the PKCS#11 backend (SoftHSM2): the timestamp key, the timestamp signature
and the approved signature are made by the token."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from hsmgate.domain.clock import ManualClock
from hsmgate.domain.ska.approval_token import ApprovalToBeSigned, Operation
from tests.helpers import assert_tsb_error, b64, soft_settings, unique
from tests.domain.ska.helpers import (
    Approver,
    approve,
    clock_server,
    create_key,
    policy,
    rule,
    sign_request,
    status,
    task_of,
    token,
)
from tests.softhsm import SoftHsmToken

pytestmark = pytest.mark.pkcs11

pytest_plugins = ["tests.softhsm_fixtures"]  # one SoftHSM2 directory per test session (SOFTHSM2_CONF)


def test_round_trip_on_softhsm(tmp_path: Path, softhsm_factory: Callable[[str], SoftHsmToken]) -> None:
    hsm = softhsm_factory("ska-token")
    settings = soft_settings(tmp_path, backend="pkcs11", pkcs11_module=hsm.module_path,
                             pkcs11_token_label=hsm.token_label, pkcs11_pin=SecretStr(hsm.pin),
                             ska_scheduler_interval=0.1)
    user, officer = Approver("ec"), Approver("ed25519")
    with clock_server(tmp_path, ManualClock(), settings=settings) as server, server.client() as http:
        assert "timestamp-key" in http.get("/v1/key").json()
        stamp_key = serialization.load_der_public_key(base64.b64decode(
            http.get("/v1/key/timestamp-key/attributes").json()["json"]["publicKey"]))
        assert isinstance(stamp_key, ec.EllipticCurvePublicKey)
        label = unique("ska-hsm")
        officers = rule(token((1, [officer])))
        key = create_key(http, label, policy(rule(token((1, [user]), timeout=600)), block=officers,
                                             unblock=officers))
        request_id = sign_request(http, label)
        task = task_of(http, user, server.clock, request_id)
        decoded = ApprovalToBeSigned.decode(base64.b64decode(task["approvalToBeSigned"]))
        assert decoded.timestamp is not None and decoded.timestamp_signature is not None
        stamp_key.verify(decoded.timestamp_signature, decoded.timestamp, ec.ECDSA(hashes.SHA256()))
        assert http.post("/v1/approval", json=user.send_approval(task)).status_code == 200
        done = status(http, request_id)
        assert done["status"] == "EXECUTED", done
        public = serialization.load_der_public_key(base64.b64decode(key["json"]["publicKey"]))
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(base64.b64decode(done["result"]), b"Some Payload", ec.ECDSA(hashes.SHA256()))

        sync = {"signRequest": {"payload": b64(b"x"), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}}
        assert_tsb_error(http.post("/v1/synchronousSign", json=sync), 401, 400)
        block_token = ApprovalToBeSigned.time_less(Operation.BLOCK, label.encode()).encode()
        assert http.post("/v1/synchronousBlock", json={"blockRequest": {
            "blockKeyName": label, "signedApprovals": [officer.signed_approval(block_token)]}}).status_code == 200
        assert_tsb_error(http.post("/v1/sign", json=sync), 614, 400)
        blocked_id = http.post("/v1/unblock", json={"unblockRequest": {"unblockKeyName": label}}).json()
        unblock_id = blocked_id["unblockKeyRequestId"]
        assert approve(http, officer, server.clock, unblock_id, kind="UnblockKey").status_code == 200
        assert status(http, unblock_id)["status"] == "EXECUTED"
        assert http.post("/v1/key/attributes", json={"label": label}).json()["json"]["policy"]["keyStatus"] == {
            "blocked": False}
