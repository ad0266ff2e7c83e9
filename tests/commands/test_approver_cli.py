"""``hsmgate approver register | tasks | show | approve | reject`` against a live server: the key kept
in a 0600 file (encrypted with the key password) or on a SoftHSM2 token; results checked with
``cryptography``."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner, Result

from hsmgate.cli import cli
from hsmgate.domain.clock import ManualClock
from tests.domain.ska.helpers import P256, SIGN_ATTRIBUTES, ClockServer, clock_server, policy, status
from tests.helpers import unique
from tests.softhsm import SoftHsmToken

pytest_plugins = ["tests.softhsm_fixtures"]

BACKUP = "backup-pw-1"
KEY_PASSWORD = "key-file-pw"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockServer]:
    with clock_server(tmp_path_factory.mktemp("approver-cli"), ManualClock()) as live:
        yield live


@pytest.fixture(scope="module")
def http(server: ClockServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def run(server: ClockServer, *args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, ["approver", *args], env={
        "HSMGATE_URL": server.url, "COLUMNS": "250", "HSMGATE_APPROVER_BACKUP_PASSWORD": BACKUP,
        "HSMGATE_APPROVER_KEY_PASSWORD": KEY_PASSWORD, **env})


def one_line_error(result: Result, text: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hsmgate: ") and text in lines[0], result.output
    assert "Traceback" not in result.output


def new_approver(http: httpx.Client, name: str) -> str:
    response = http.put("/v1/approverManagement/create", json={
        "approverName": name, "algorithm": "RSA", "keySize": 2048, "backupPassword": BACKUP})
    assert response.status_code == 200, response.text
    return str(response.json()["oneTimeCode"])


def ska_key(http: httpx.Client, approver: str) -> tuple[str, ec.EllipticCurvePublicKey]:
    label = unique("cli-ska")
    rule_use = {"tokens": [{"name": "T", "timelock": 0, "timeout": 0, "groups": [{"name": "G", "quorum": 1, "approvals": [
        {"type": "onboarded_approver_certificate", "name": approver}]}]}]}
    response = http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": P256,
                                          "attributes": SIGN_ATTRIBUTES, "policy": policy(rule_use)})
    assert response.status_code == 201, response.text
    public = serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return label, public


def sign_request(http: httpx.Client, label: str, payload: bytes) -> str:
    response = http.post("/v1/sign", json={"signRequest": {
        "payload": base64.b64encode(payload).decode(), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
    assert response.status_code == 201, response.text
    return str(response.json()["signRequestId"])


def task_ids(server: ClockServer, *key_args: str, **env: str) -> list[str]:
    listed = run(server, "tasks", "--json", *key_args, **env)
    assert listed.exit_code == 0, listed.output
    return [task["id"] for task in json.loads(listed.output)]


def test_register_then_approve_and_reject(server: ClockServer, http: httpx.Client, tmp_path: Path) -> None:
    name = unique("cli-approver")
    code = new_approver(http, name)
    key_file = tmp_path / "approver.pem"
    registered = run(server, "register", "--name", name, "--code", code, "--key-file", str(key_file))
    assert registered.exit_code == 0, registered.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pem = key_file.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in pem and b"-----BEGIN PRIVATE KEY-----" not in pem
    with pytest.raises(TypeError):  # encrypted: no key without the password
        serialization.load_pem_private_key(pem[:pem.index(b"-----BEGIN CERTIFICATE-----")], None)
    assert serialization.load_pem_private_key(pem[:pem.index(b"-----BEGIN CERTIFICATE-----")], KEY_PASSWORD.encode())
    one_line_error(run(server, "register", "--name", name, "--code", code, "--key-file", str(tmp_path / "again.pem")),
                   "412")  # the code is used up
    one_line_error(run(server, "register", "--name", name, "--code", code, "--key-file", str(key_file)),
                   "exists already")

    label, public = ska_key(http, name)
    approved_id = sign_request(http, label, b"transfer 100 CHF")
    rejected_id = sign_request(http, label, b"transfer 9999 CHF")
    key_args = ("--key-file", str(key_file))
    ids = task_ids(server, *key_args)
    assert len(ids) == 2
    table = run(server, "tasks", *key_args)
    assert table.exit_code == 0 and "2 open tasks" in table.output and "transfer 100 CHF" in table.output
    assert label in table.output and "SIGN" in table.output

    shown = {}
    for task_id in ids:
        result = run(server, "show", task_id, "--json", *key_args)
        assert result.exit_code == 0, result.output
        shown[task_id] = json.loads(result.output)
    approve_task = next(t for t, s in shown.items() if s["payload"] == "transfer 100 CHF")
    reject_task = next(t for t, s in shown.items() if s["payload"] == "transfer 9999 CHF")
    assert shown[approve_task]["approving allows"] == "use the key once, for this payload"
    assert shown[approve_task]["key"] == label and shown[approve_task]["request"] == "SIGN"
    plain = run(server, "show", approve_task, *key_args)
    assert plain.exit_code == 0 and "time-less token" in plain.output

    assert run(server, "approve", approve_task, *key_args).exit_code == 0
    done = status(http, approved_id)
    assert done["status"] == "EXECUTED", done
    public.verify(base64.b64decode(done["result"]), b"transfer 100 CHF", ec.ECDSA(hashes.SHA256()))
    assert run(server, "reject", reject_task, *key_args).exit_code == 0
    assert status(http, rejected_id)["status"] == "REJECTED"
    assert task_ids(server, *key_args) == []
    one_line_error(run(server, "approve", approve_task, *key_args), "no open task")

    one_line_error(run(server, "tasks", *key_args, HSMGATE_APPROVER_KEY_PASSWORD="wrong"), "key password")
    key_file.chmod(0o644)
    one_line_error(run(server, "tasks", *key_args), "chmod 600")
    one_line_error(run(server, "tasks"), "--key-file")


@pytest.mark.pkcs11
def test_register_on_a_token(server: ClockServer, http: httpx.Client,
                             softhsm_factory: Callable[[str], SoftHsmToken]) -> None:
    token = softhsm_factory("approver-cli")
    name = unique("token-approver")
    env = {"HSMGATE_APPROVER_PKCS11_MODULE": token.module_path, "HSMGATE_APPROVER_TOKEN_LABEL": token.token_label,
           "HSMGATE_APPROVER_PIN": token.pin, "HSMGATE_APPROVER_KEY_LABEL": "officer"}
    registered = run(server, "register", "--name", name, "--code", new_approver(http, name), **env)
    assert registered.exit_code == 0, registered.output
    label, public = ska_key(http, name)
    request_id = sign_request(http, label, b"signed by a token approver")
    (task_id,) = task_ids(server, **env)
    assert run(server, "approve", task_id, **env).exit_code == 0
    done = status(http, request_id)
    assert done["status"] == "EXECUTED", done
    public.verify(base64.b64decode(done["result"]), b"signed by a token approver", ec.ECDSA(hashes.SHA256()))
    one_line_error(run(server, "register", "--name", name, "--code", "123", **env), "412")
