"""Approvers and HTTP helpers of the SKA tests.

Approvers are made with ``cryptography`` (RSA, EC P-256, Ed25519) or driven only by the OpenSSL CLI
(:class:`OpenSslApprover`), and sign exactly as the reference says approval clients do: the
timestamp's UTF-8 bytes, and the base64-*decoded* ``approvalToBeSigned`` (JDK formats: PKCS#1 v1.5,
DER ECDSA, raw Ed25519).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from hsmgate.app import create_app
from hsmgate.domain.clock import ManualClock
from hsmgate.domain.ska.approval_token import SignedApproval
from hsmgate.settings import Settings
from tests.helpers import LiveServer, b64, soft_settings

OPENSSL = shutil.which("openssl")
SIGN_ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "destroyable": True}
SECP256K1 = "1.3.132.0.10"
P256 = "1.2.840.10045.3.1.7"
ED25519 = "1.3.101.112"


def spki_of(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class ClockServer(LiveServer):
    """A live server whose SKA clock the test controls (``create_app(settings, clock=…)``)."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        super().__init__(settings, app=create_app(settings, clock=clock))
        self.clock = clock


@contextmanager
def clock_server(data_dir: Path, clock: ManualClock | None = None, **overrides: Any) -> Iterator[ClockServer]:
    settings = overrides.pop("settings", None)
    if settings is None:
        settings = soft_settings(data_dir, **{"ska_scheduler_interval": 0.1, **overrides})
    with ClockServer(settings, clock or ManualClock()) as server:
        yield server


# -- approvers ----------------------------------------------------------------------------------------


class Approver:
    """An approver key made with ``cryptography``."""

    def __init__(self, kind: str, name: str | None = None) -> None:
        self.kind = kind
        self.name = name or f"{kind}-{uuid.uuid4().hex[:6]}"
        if kind == "rsa":
            self.key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "ec":
            self.key = ec.generate_private_key(ec.SECP256R1())
        elif kind == "ed25519":
            self.key = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(kind)
        self.spki = spki_of(self.key.public_key())

    @property
    def b64(self) -> str:
        return b64(self.spki)

    @property
    def digest(self) -> str:
        return "EdDSA" if self.kind == "ed25519" else "SHA-256"

    @property
    def oid(self) -> str:
        return {"rsa": "1.2.840.113549.1.1.11", "ec": "1.2.840.10045.4.3.2", "ed25519": "1.3.101.112"}[self.kind]

    def sign(self, data: bytes) -> bytes:
        if self.kind == "rsa":
            return bytes(self.key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
        if self.kind == "ec":
            return bytes(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return bytes(self.key.sign(data))

    def approval(self) -> dict[str, Any]:
        """This approver as a policy ``approvals`` entry."""
        return {"type": "public_key", "name": self.name, "value": self.b64}

    def authentication(self, moment: datetime) -> dict[str, Any]:
        """``timestamp`` + ``timestampSignature`` … of a task fetch at ``moment``."""
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        return {"timestamp": stamp, "timestampSignature": b64(self.sign(stamp.encode())),
                "approverPublicKey": self.b64, "timestampDigestAlgorithm": self.digest}

    def send_approval(self, task: dict[str, Any]) -> dict[str, Any]:
        """The ``SendApprovalDto`` of a task: signature over the decoded token."""
        token = base64.b64decode(task["approvalToBeSigned"])
        return {"id": task["id"], "approvalToBeSigned": task["approvalToBeSigned"], "signature": b64(self.sign(token)),
                "approvalDigestAlgorithm": self.digest, "approverPublicKey": self.b64}

    def signed_approval(self, token: bytes) -> str:
        """A ``signedApprovals`` element (serialised PrimusAuthorizationToken) for ``token``."""
        return b64(SignedApproval.create(token, self.sign(token), self.oid, self.spki).encode())


class OpenSslApprover(Approver):
    """An RSA approver that exists only as an OpenSSL key file: key generation, public key export
    and every signature are ``openssl`` commands (reference §A.5)."""

    def __init__(self, directory: Path, name: str = "openssl-approver") -> None:
        assert OPENSSL is not None, "the OpenSSL CLI is required by this test"
        self.kind = "rsa"
        self.name = name
        self.directory = directory
        self.pem = directory / "approver.pem"
        self._run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(self.pem))
        self.spki = self._run("pkey", "-in", str(self.pem), "-pubout", "-outform", "DER")

    def _run(self, *args: str, data: bytes | None = None) -> bytes:
        result = subprocess.run([OPENSSL, *args], input=data, capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout

    def sign(self, data: bytes) -> bytes:
        # echo -n $DATA | openssl dgst -sha256 -sign approver.pem
        return self._run("dgst", "-sha256", "-sign", str(self.pem), data=data)

    def authentication(self, moment: datetime) -> dict[str, Any]:
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")  # date -u "+%Y-%m-%dT%H:%M:%S+00:00"
        return {"timestamp": stamp, "timestampSignature": b64(self.sign(stamp.encode())),
                "approverPublicKey": self.b64, "timestampDigestAlgorithm": "SHA-256"}


# -- policies and requests ------------------------------------------------------------------------------


def token(*groups: tuple[int, list[Approver]], name: str = "Token1", timelock: int = 0,
          timeout: int = 0) -> dict[str, Any]:
    return {"name": name, "timelock": timelock, "timeout": timeout, "groups": [
        {"name": f"Group{i + 1}", "quorum": quorum, "approvals": [a.approval() for a in members]}
        for i, (quorum, members) in enumerate(groups)
    ]}


def rule(*tokens: dict[str, Any]) -> dict[str, Any]:
    return {"tokens": list(tokens)}


def policy(use: dict[str, Any] | None = None, *, block: dict[str, Any] | None = None,
           unblock: dict[str, Any] | None = None, modify: dict[str, Any] | None = None,
           blocked: bool = False) -> dict[str, Any]:
    return {"ruleUse": use, "ruleBlock": block, "ruleUnblock": unblock, "ruleModify": modify,
            "keyStatus": {"blocked": blocked}}


def create_key(http: httpx.Client, label: str, key_policy: dict[str, Any] | None, *, algorithm: str = "EC",
               curve: str | None = P256, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"label": label, "algorithm": algorithm, "attributes": dict(SIGN_ATTRIBUTES),
                            "policy": key_policy, **extra}
    if curve is not None and algorithm in ("EC", "ED"):
        body["curveOid"] = curve
    if algorithm == "RSA":
        body.setdefault("keySize", 2048)
    response = http.post("/v1/key", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def sign_request(http: httpx.Client, label: str, payload: bytes = b"Some Payload",
                 algorithm: str = "SHA256_WITH_ECDSA", **extra: Any) -> str:
    response = http.post("/v1/sign", json={"signRequest": {
        "payload": b64(payload), "payloadType": "UNSPECIFIED", "signKeyName": label,
        "signatureAlgorithm": algorithm, **extra}})
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"signRequestId"}
    return str(response.json()["signRequestId"])


def tasks(http: httpx.Client, approver: Approver, clock: ManualClock, *, kind: str = "Sign",
          **fields: Any) -> list[dict[str, Any]]:
    response = http.post(f"/v1/filtered{kind}ApprovalTask", json={**approver.authentication(clock.now()), **fields})
    assert response.status_code == 200, response.text
    return list(response.json()["tasks"])


def task_of(http: httpx.Client, approver: Approver, clock: ManualClock, request_id: str,
            kind: str = "Sign") -> dict[str, Any]:
    found = tasks(http, approver, clock, kind=kind, requestId=request_id)
    assert len(found) == 1, found
    return found[0]


def approve(http: httpx.Client, approver: Approver, clock: ManualClock, request_id: str,
            kind: str = "Sign") -> httpx.Response:
    task = task_of(http, approver, clock, request_id, kind)
    return http.post("/v1/approval", json=approver.send_approval(task))


def status(http: httpx.Client, request_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/request/{request_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_status(http: httpx.Client, request_id: str, expected: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll until the request has ``expected`` status (the scheduler runs every 0.1 s in tests)."""
    deadline = time.monotonic() + timeout
    while True:
        body = status(http, request_id)
        if body["status"] == expected or time.monotonic() > deadline:
            assert body["status"] == expected, body
            return body
        time.sleep(0.05)
