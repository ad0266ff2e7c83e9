"""An approver's calls of the typed client, async (the sync client is driven by ``hsmgate approver``,
tests/commands/test_approver_cli.py): onboard, tasks, approve, reject against a live server;
the signature checked with ``cryptography``."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs12

from hsmgate.client import ApproverProof, AsyncHsmgateClient, TsbApiError
from tests.domain.ska.helpers import P256, clock_server, policy
from tests.helpers import unique

TRANSPORT = "0123456789abcdef0123456789abcdef"


def proof(key: rsa.RSAPrivateKey, certificate: bytes) -> ApproverProof:
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return ApproverProof(stamp, key.sign(stamp.encode(), padding.PKCS1v15(), hashes.SHA256()), certificate=certificate)


def test_the_async_client_as_an_approver(tmp_path: Path) -> None:
    with clock_server(tmp_path) as server, server.client() as http:
        name = unique("async-approver")
        code = http.put("/v1/approverManagement/create", json={
            "approverName": name, "algorithm": "RSA", "backupPassword": "bk"}).json()["oneTimeCode"]
        rule_use = {"tokens": [{"name": "T", "timelock": 0, "timeout": 0, "groups": [{"name": "G", "quorum": 1,
                    "approvals": [{"type": "onboarded_approver_certificate", "name": name}]}]}]}

        async def scenario() -> None:
            async with AsyncHsmgateClient(server.url) as client:
                answer = await client.onboard_approver(name, code, TRANSPORT)
                with pytest.raises(TsbApiError) as reused:
                    await client.onboard_approver(name, code, TRANSPORT)
                assert reused.value.error_code == 412 and reused.value.status == 400
                p12 = AESGCM(TRANSPORT.encode()).decrypt(base64.b64decode(answer.initializationVector),
                                                         base64.b64decode(answer.encryptedPayload), None)
                key, certificate, _ = pkcs12.load_key_and_certificates(p12, b"bk")
                assert isinstance(key, rsa.RSAPrivateKey) and certificate is not None
                der = certificate.public_bytes(serialization.Encoding.DER)
                created = await client.create_key(unique("async-ska"), "EC", curve_oid=P256, policy=policy(rule_use))
                label = created.json_.label
                ids = []
                for payload in (b"approve me", b"reject me"):
                    response = http.post("/v1/sign", json={"signRequest": {
                        "payload": base64.b64encode(payload).decode(), "signKeyName": label,
                        "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
                    ids.append(response.json()["signRequestId"])
                tasks = await client.approval_tasks(proof(key, der))
                assert len(tasks) == 2
                by_payload = {base64.b64decode(task.payload or ""): task for task in tasks}
                token = base64.b64decode(by_payload[b"approve me"].approvalToBeSigned)
                await client.approve_task(by_payload[b"approve me"].id, token,
                                          key.sign(token, padding.PKCS1v15(), hashes.SHA256()), certificate=der)
                await client.reject_task(by_payload[b"reject me"].id, proof(key, der))
                done, rejected = await asyncio.gather(*(client.get_request(i) for i in ids))
                assert (str(done.status), str(rejected.status)) == ("EXECUTED", "REJECTED")
                public = serialization.load_der_public_key(base64.b64decode(created.json_.publicKey or ""))
                assert isinstance(public, ec.EllipticCurvePublicKey)
                public.verify(base64.b64decode(done.result or ""), b"approve me", ec.ECDSA(hashes.SHA256()))
                assert await client.approval_tasks(proof(key, der)) == []

        asyncio.run(scenario())
