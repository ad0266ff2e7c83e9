"""Approver management over HTTP (wave-2 §2; docs/approvers.md): create, onboard, status, restore,
forgotten password, renew, delete — on the soft token; the onboarding payload opened independently
(AES-GCM with ``cryptography``, the PKCS#12 with the ``openssl pkcs12`` command line)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import SecretStr

from hsmgate.app import create_app
from hsmgate.domain.clock import ManualClock
from hsmgate.settings import ConfigError
from hsmgate.store.audit import AuditRepository
from tests.api.test_internal_keys import operations
from tests.domain.ska.helpers import (
    P256,
    SIGN_ATTRIBUTES,
    Approver,
    ClockServer,
    clock_server,
    policy,
    rule,
    status,
    token,
    wait_status,
)
from tests.helpers import LiveServer, assert_tsb_error, soft_settings, unique
from tests.softhsm import SoftHsmToken

pytest_plugins = ["tests.softhsm_fixtures"]

OPENSSL = shutil.which("openssl")
TRANSPORT_256 = "AnMrg9Ho5PLqqR8kmHhfgsvp8iT2OlpW"  # 32 characters: AES-256-GCM (the reference's sample)
TRANSPORT_128 = "jRo2Ler2Stfi2tGS"  # 16 characters: AES-128-GCM


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockServer]:
    with clock_server(tmp_path_factory.mktemp("approvers"), ManualClock(),
                      approver_one_time_code_ttl=3600) as live:
        yield live


@pytest.fixture(scope="module")
def http(server: ClockServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def create(http: httpx.Client, name: str, password: str = "2al15-backup", *, method: str = "PUT",
           key_size: int = 2048, **extra: Any) -> str:
    body = {"approverName": name, "algorithm": "RSA", "keySize": key_size, "backupPassword": list(password),
            "validity": 3650, **extra}
    response = http.request(method, "/v1/approverManagement/create", json=body)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"oneTimeCode"}
    code = response.json()["oneTimeCode"]
    assert isinstance(code, str) and code.isdigit() and len(code) == 12
    return str(code)


def onboard(http: httpx.Client, name: str, code: str, transport: str = TRANSPORT_256,
            path: str = "/v1/approver/onboard") -> httpx.Response:
    return http.post(path, json={"approverName": name, "oneTimeCode": list(code),
                                 "transportPassword": list(transport)})


def open_payload(body: dict[str, Any], transport: str) -> bytes:
    """The PKCS#12 of an onboarding answer, decrypted as docs/approvers.md describes it."""
    assert set(body) == {"encryptedPayload", "initializationVector"}
    iv = base64.b64decode(body["initializationVector"], validate=True)
    assert len(iv) == 12
    return AESGCM(transport.encode()).decrypt(iv, base64.b64decode(body["encryptedPayload"], validate=True), None)


def onboarded_key(http: httpx.Client, name: str, password: str = "2al15-backup", *,
                  transport: str = TRANSPORT_256) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """Create and onboard ``name``; its private key and certificate out of the PKCS#12."""
    response = onboard(http, name, create(http, name, password), transport)
    assert response.status_code == 200, response.text
    key, certificate, _ = pkcs12.load_key_and_certificates(open_payload(response.json(), transport),
                                                           password.encode())
    assert isinstance(key, rsa.RSAPrivateKey) and certificate is not None
    return key, certificate


def onboarding_status(http: httpx.Client, method: str = "GET") -> dict[str, dict[str, str]]:
    response = http.request(method, "/v1/approverManagement/onboarding/status")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"onboarded", "pending"}
    return {state: {e["approverName"]: e["approverCertificate"] for e in body[state]} for state in body}


@pytest.mark.subprocess
@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line")
def test_onboarding_payload_opens_with_openssl(http: httpx.Client, tmp_path: Path) -> None:
    name = unique("finance-officer") + "@example.com"
    code = create(http, name, "2al15")
    assert name in onboarding_status(http)["pending"]
    response = onboard(http, name, code, TRANSPORT_128)
    assert response.status_code == 200, response.text
    p12 = tmp_path / "approver.p12"
    p12.write_bytes(open_payload(response.json(), TRANSPORT_128))  # AES-128-GCM: a 16-byte password
    pem = subprocess.run([OPENSSL, "pkcs12", "-in", str(p12), "-nodes", "-passin", "pass:2al15"],
                         capture_output=True, check=True, timeout=60).stdout
    key = serialization.load_pem_private_key(
        pem[pem.index(b"-----BEGIN PRIVATE KEY-----"):pem.index(b"-----END PRIVATE KEY-----") + 25], None)
    certificate = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE-----"):])
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert certificate.subject.rfc4514_string() == f"CN={name}"
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()
    certificate.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes,  # self-signed
                                    padding.PKCS1v15(), hashes.SHA256())
    days = (certificate.not_valid_after_utc - certificate.not_valid_before_utc).days
    assert days == 3650
    listed = onboarding_status(http, "POST")
    assert name not in listed["pending"]
    assert base64.b64decode(listed["onboarded"][name]) == certificate.public_bytes(serialization.Encoding.DER)
    wrong = subprocess.run([OPENSSL, "pkcs12", "-in", str(p12), "-nodes", "-passin", "pass:wrong"],
                           capture_output=True, check=False, timeout=60)
    assert wrong.returncode != 0


def test_create_by_post_and_sizes(http: httpx.Client) -> None:
    name = unique("post")
    code = create(http, name, method="POST", key_size=3072)
    key, _ = pkcs12.load_key_and_certificates(open_payload(onboard(http, name, code).json(), TRANSPORT_256),
                                              b"2al15-backup")[:2]
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    assert_tsb_error(http.put("/v1/approverManagement/create", json={
        "approverName": name, "algorithm": "RSA", "keySize": 2048, "backupPassword": "x"}), 632, 400, naming=name)
    assert_tsb_error(http.put("/v1/approverManagement/create", json={
        "approverName": unique("a"), "algorithm": "RSA", "keySize": 1024, "backupPassword": "x"}), 603, 400,
        naming="keySize")
    assert_tsb_error(http.put("/v1/approverManagement/create", json={
        "approverName": unique("a"), "algorithm": "EC", "keySize": 2048, "backupPassword": "x"}), 601, 400,
        naming="algorithm")
    assert_tsb_error(http.put("/v1/approverManagement/create", json={
        "approverName": unique("a"), "algorithm": "RSA", "keySize": 2048}), 600, 400, naming="backupPassword")
    for bad in ("bad\u200bname", "a/b", " ", "x" * 257):
        assert_tsb_error(http.put("/v1/approverManagement/create", json={
            "approverName": bad, "algorithm": "RSA", "backupPassword": "x"}), 600, 400, naming="approverName")


def test_one_time_code_is_single_use_and_expires(http: httpx.Client, server: ClockServer) -> None:
    name = unique("single")
    code = create(http, name)
    assert_tsb_error(onboard(http, name, "000000000000"), 412, 400)
    assert onboard(http, name, code, path="/v1/approverManagement/onboard").status_code == 200  # the older path
    assert_tsb_error(onboard(http, name, code), 412, 400, naming="used")
    assert_tsb_error(onboard(http, unique("nobody"), code), 654, 404)

    late = unique("late")
    stale = create(http, late)
    server.clock.advance(3601)
    assert_tsb_error(onboard(http, late, stale), 412, 400, naming="expired")
    assert late in onboarding_status(http)["pending"]
    fresh = http.post("/v1/approverManagement/renewOneTimeCode", json={"approverName": late})
    assert fresh.status_code == 200 and set(fresh.json()) == {"oneTimeCode"}
    assert_tsb_error(onboard(http, late, stale), 412, 400)
    assert onboard(http, late, fresh.json()["oneTimeCode"]).status_code == 200
    assert_tsb_error(http.post("/v1/approverManagement/renewOneTimeCode", json={"approverName": unique("x")}),
                     654, 404)


@pytest.mark.parametrize("transport", ["short", "A" * 24, "A" * 33, "é" * 12, ""])
def test_wrong_transport_password_length(http: httpx.Client, transport: str) -> None:
    name = unique("transport")
    code = create(http, name)
    assert_tsb_error(onboard(http, name, code, transport), 600, 400, naming="transportPassword")
    assert onboard(http, name, code, "é" * 8).status_code == 200  # 16 bytes in UTF-8: the code still works


def test_restore_with_known_password(http: httpx.Client) -> None:
    name = unique("restore")
    key, certificate = onboarded_key(http, name, "known-pw")
    restored = http.post("/v1/approverManagement/restoreFromBackup", json={"approverName": name})
    assert restored.status_code == 200 and set(restored.json()) == {"oneTimeCode"}, restored.text
    assert name in onboarding_status(http)["pending"]  # until the new code is redeemed
    response = onboard(http, name, restored.json()["oneTimeCode"])
    again, cert_again, _ = pkcs12.load_key_and_certificates(open_payload(response.json(), TRANSPORT_256), b"known-pw")
    assert isinstance(again, rsa.RSAPrivateKey)
    assert again.private_numbers() == key.private_numbers() and cert_again == certificate
    assert_tsb_error(http.post("/v1/approverManagement/restoreFromBackup", json={"approverName": unique("x")}),
                     654, 404)


def test_forgot_password_executes_under_the_empty_policy(http: httpx.Client) -> None:
    name = unique("forgot")
    key, _ = onboarded_key(http, name, "old-password")
    response = http.post("/v1/approverManagement/restoreFromBackup/forgotPassword",
                         json={"approverName": name, "newBackupPassword": list("new-password")})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"unwrapRequestId"}
    done = status(http, response.json()["unwrapRequestId"])
    assert done["status"] == "EXECUTED", done
    code = done["result"]
    p12 = open_payload(onboard(http, name, code).json(), TRANSPORT_256)
    again = pkcs12.load_key_and_certificates(p12, b"new-password")[0]
    assert isinstance(again, rsa.RSAPrivateKey) and again.private_numbers() == key.private_numbers()
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(p12, b"old-password")
    assert_tsb_error(http.post("/v1/approverManagement/restoreFromBackup/forgotPassword",
                               json={"approverName": name}), 600, 400, naming="newBackupPassword")


def test_forgot_password_waits_for_the_backup_keys_quorum(tmp_path: Path) -> None:
    officer = Approver("ec", "recovery-officer")
    backup_policy = policy(rule(token((1, [officer]))))
    with clock_server(tmp_path, ManualClock(), approver_backup_key_policy=json.dumps(backup_policy)) as live, \
            live.client() as http:
        name = unique("quorum")
        key, _ = onboarded_key(http, name, "first")
        request_id = http.post("/v1/approverManagement/restoreFromBackup/forgotPassword",
                               json={"approverName": name, "newBackupPassword": "second"}).json()["unwrapRequestId"]
        assert status(http, request_id)["status"] == "PENDING"
        listed = http.post("/v1/filteredUnwrapKeyApprovalTask",
                           json={**officer.authentication(live.clock.now()), "requestId": request_id,
                                 "detailLevel": "level3"}).json()["tasks"]
        assert len(listed) == 1
        assert base64.b64decode(listed[0]["payload"]) == name.encode()
        assert "second" not in base64.b64decode(listed[0]["requestBase64"]).decode()  # sealed, never in clear
        assert http.post("/v1/approval", json=officer.send_approval(listed[0])).status_code == 200
        done = status(http, request_id)
        assert done["status"] == "EXECUTED", done
        p12 = open_payload(onboard(http, name, done["result"]).json(), TRANSPORT_256)
        again = pkcs12.load_key_and_certificates(p12, b"second")[0]
        assert isinstance(again, rsa.RSAPrivateKey) and again.private_numbers() == key.private_numbers()


def test_delete(http: httpx.Client) -> None:
    name = unique("gone")
    code = create(http, name)
    response = http.delete(f"/v1/approverManagement/delete/{name}")
    assert response.status_code == 200 and response.content == b""
    assert_tsb_error(onboard(http, name, code), 654, 404)
    assert name not in onboarding_status(http)["pending"]
    assert_tsb_error(http.delete(f"/v1/approverManagement/delete/{name}"), 654, 404)
    assert create(http, name)  # the name is free again


def test_the_backup_key_is_internal(http: httpx.Client) -> None:
    label = "approver-mgmt-backup-key-rsa-wrapping"
    for path, body in operations(label):
        response = http.post(path, json=body)
        answer = response.json()
        error = answer["results"][0] if "results" in answer else answer  # a batch: the item's error
        assert error["errorCode"] == 614 and "internal" in error["message"], (path, response.text)
    assert_tsb_error(http.post("/v1/key/deleteKey", json={"label": label}), 614, 400)
    new_policy = {"ruleUse": None, "ruleBlock": None, "ruleUnblock": None, "ruleModify": None}
    for path, body in (("/v1/modify", {"modifyRequest": {"modifyKeyName": label, "policy": new_policy}}),
                       ("/v1/synchronousModify", {"modifyRequest": {"modifyKeyName": label, "policy": new_policy}}),
                       ("/v1/block", {"blockRequest": {"blockKeyName": label}}),
                       ("/v1/synchronousBlock", {"blockRequest": {"blockKeyName": label}}),
                       ("/v1/unblock", {"unblockRequest": {"unblockKeyName": label}}),
                       ("/v1/sign", {"signRequest": {"signKeyName": label, "payload": "AAAA",
                                                     "signatureAlgorithm": "SHA256_WITH_RSA"}})):
        assert_tsb_error(http.post(path, json=body), 614, 400, naming="internal")  # its policy stays hsmgate's
    assert http.get(f"/v1/key/{label}/attributes").json()["json"]["policy"]["keyStatus"] == {"blocked": False}
    assert_tsb_error(http.post("/v1/decrypt", json={"decryptRequest": {
        "decryptKeyName": label, "encryptedPayload": "AAAA", "cipherAlgorithm": "RSA_PADDING_OAEP_WITH_SHA256"}}),
        614, 400)


def as_approver(name: str, key: rsa.RSAPrivateKey) -> Approver:
    """The test helpers' approver, signing with the key out of the onboarding PKCS#12."""
    approver = Approver("rsa", name)
    approver.key = key
    approver.spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return approver


def onboarded_policy(*names: str, quorum: int = 1, timelock: int = 0) -> dict[str, Any]:
    group = {"name": "Officers", "quorum": quorum,
             "approvals": [{"type": "onboarded_approver_certificate", "name": name} for name in names]}
    return policy({"tokens": [{"name": "Token1", "timelock": timelock, "timeout": 0, "groups": [group]}]})


def create_ska_key(http: httpx.Client, label: str, key_policy: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": P256, "policy": key_policy,
                                      "attributes": dict(SIGN_ATTRIBUTES)})


def sign_async(http: httpx.Client, label: str, payload: bytes) -> str:
    response = http.post("/v1/sign", json={"signRequest": {
        "payload": base64.b64encode(payload).decode(), "payloadType": "UNSPECIFIED", "signKeyName": label,
        "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
    assert response.status_code == 201, response.text
    return str(response.json()["signRequestId"])


@pytest.mark.subprocess
@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line")
def test_a_policy_naming_an_onboarded_approver(http: httpx.Client, server: ClockServer, tmp_path: Path) -> None:
    """Create and onboard an approver, name it in an SKA key's policy, ask for a signature, approve
    with the key from the decrypted PKCS#12: the request executes; OpenSSL verifies the signature."""
    name = unique("officer") + "@example.com"
    key, certificate = onboarded_key(http, name)
    officer = as_approver(name, key)
    label = unique("ska-onboarded")
    created = create_ska_key(http, label, onboarded_policy(name))
    assert created.status_code == 201, created.text
    rule_use = created.json()["json"]["policy"]["ruleUse"]
    assert rule_use["tokens"][0]["groups"][0]["approvals"] == [
        {"type": "onboarded_approver_certificate", "name": name}]  # stored by name
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert base64.b64encode(der).decode() in created.json()["xml"]  # the XML carries the certificate

    request_id = sign_async(http, label, b"pay the invoice")
    assert status(http, request_id)["status"] == "PENDING"
    by_certificate = http.post("/v1/filteredSignApprovalTask", json={
        **officer.authentication(server.clock.now()), "approverPublicKey": None,
        "approverCertificate": base64.b64encode(der).decode(), "requestId": request_id})
    assert by_certificate.status_code == 200, by_certificate.text
    (task,) = by_certificate.json()["tasks"]
    assert base64.b64decode(task["approverPublicKey"]) == officer.spki
    assert http.post("/v1/approval", json=officer.send_approval(task)).status_code == 200
    done = status(http, request_id)
    assert done["status"] == "EXECUTED", done
    assert [base64.b64decode(k) for k in done["approvedBy"]] == [officer.spki]

    public = tmp_path / "key.pem"
    public.write_bytes(serialization.load_der_public_key(base64.b64decode(created.json()["json"]["publicKey"]))
                       .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "payload").write_bytes(b"pay the invoice")
    (tmp_path / "signature").write_bytes(base64.b64decode(done["result"]))
    verified = subprocess.run([OPENSSL, "dgst", "-sha256", "-verify", str(public), "-signature",
                               str(tmp_path / "signature"), str(tmp_path / "payload")],
                              capture_output=True, check=False, timeout=60)
    assert verified.returncode == 0 and b"Verified OK" in verified.stdout, verified.stderr

    other = as_approver("someone-else", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    second = sign_async(http, label, b"again")
    assert http.post("/v1/filteredSignApprovalTask", json={
        **other.authentication(server.clock.now()), "requestId": second}).json()["tasks"] == []


def test_policies_need_existing_approvers(http: httpx.Client) -> None:
    missing = unique("nobody")
    assert_tsb_error(create_ska_key(http, unique("ska"), onboarded_policy(missing)), 654, 404, naming=missing)
    unnamed = onboarded_policy("x")
    del unnamed["ruleUse"]["tokens"][0]["groups"][0]["approvals"][0]["name"]
    assert_tsb_error(create_ska_key(http, unique("ska"), unnamed), 604, 400, naming="name")


def test_deleting_an_approver_drops_its_tasks_and_approvals(http: httpx.Client, server: ClockServer) -> None:
    first, second = unique("first"), unique("second")
    first_key, _ = onboarded_key(http, first)
    second_key, _ = onboarded_key(http, second)
    alice, bob = as_approver(first, first_key), as_approver(second, second_key)
    label = unique("ska-two")
    assert create_ska_key(http, label, onboarded_policy(first, second, quorum=2)).status_code == 201
    request_id = sign_async(http, label, b"two of two")
    (task,) = http.post("/v1/filteredSignApprovalTask", json={
        **alice.authentication(server.clock.now()), "requestId": request_id}).json()["tasks"]
    assert http.post("/v1/approval", json=alice.send_approval(task)).status_code == 200
    assert status(http, request_id)["status"] == "PENDING"

    assert http.delete(f"/v1/approverManagement/delete/{second}").status_code == 200
    assert http.post("/v1/filteredSignApprovalTask", json={
        **bob.authentication(server.clock.now()), "requestId": request_id}).json()["tasks"] == []
    later = sign_async(http, label, b"after the deletion")
    assert http.post("/v1/filteredSignApprovalTask", json={
        **bob.authentication(server.clock.now()), "requestId": later}).json()["tasks"] == []
    assert status(http, request_id)["status"] == "PENDING"  # the quorum cannot be reached any more

    assert http.delete(f"/v1/approverManagement/delete/{first}").status_code == 200
    assert create_ska_key(http, unique("ska"), onboarded_policy(first)).status_code == 404
    described = http.post("/v1/key/attributes", json={"label": label})
    assert described.status_code == 200  # the key stays readable; its policy still names them
    names = [a["name"] for a in described.json()["json"]["policy"]["ruleUse"]["tokens"][0]["groups"][0]["approvals"]]
    assert names == [first, second]


def test_approvals_of_a_deleted_approver_stop_counting(http: httpx.Client, server: ClockServer) -> None:
    """Two keys, each naming one approver, a 60 s timelock; both approve; one approver is deleted
    before the timelock passes: only the other key's request executes."""
    kept, deleted = unique("kept"), unique("deleted")
    requests = {}
    for name in (kept, deleted):
        approver = as_approver(name, onboarded_key(http, name)[0])
        label = unique("ska-timelock")
        assert create_ska_key(http, label, onboarded_policy(name, timelock=60)).status_code == 201
        request_id = sign_async(http, label, b"after the timelock")
        (task,) = http.post("/v1/filteredSignApprovalTask", json={
            **approver.authentication(server.clock.now()), "requestId": request_id}).json()["tasks"]
        assert http.post("/v1/approval", json=approver.send_approval(task)).status_code == 200
        assert status(http, request_id)["status"] == "APPROVED"
        requests[name] = request_id
    assert http.delete(f"/v1/approverManagement/delete/{deleted}").status_code == 200
    server.clock.advance(61)
    wait_status(http, requests[kept], "EXECUTED")
    wait_status(http, requests[deleted], "PENDING")


@pytest.mark.pkcs11
def test_on_softhsm(tmp_path: Path, softhsm_factory: Callable[[str], SoftHsmToken]) -> None:
    """The backup key on a SoftHSM2 token (RSA-OAEP with SHA-1, all SoftHSM2 offers): create,
    onboard, the forgotten-password restore, and an approval with the onboarded key."""
    hsm = softhsm_factory("approvers")
    settings = soft_settings(tmp_path, backend="pkcs11", pkcs11_module=hsm.module_path,
                             pkcs11_token_label=hsm.token_label, pkcs11_pin=SecretStr(hsm.pin),
                             ska_scheduler_interval=0.1)
    with clock_server(tmp_path, ManualClock(), settings=settings) as live, live.client() as http:
        backup = http.get("/v1/key/approver-mgmt-backup-key-rsa-wrapping/attributes")
        assert backup.status_code == 200, backup.text  # readable, like the other internal keys, never usable
        attributes = backup.json()["json"]
        assert attributes["keySize"] == 3072 and attributes["policy"]["ruleUse"] is None
        assert attributes["attributes"]["neverExtractable"] and not attributes["attributes"]["extractable"]
        name = unique("hsm-officer")
        key, _ = onboarded_key(http, name, "on-the-token")
        done = status(http, http.post("/v1/approverManagement/restoreFromBackup/forgotPassword", json={
            "approverName": name, "newBackupPassword": "renewed"}).json()["unwrapRequestId"])
        assert done["status"] == "EXECUTED", done
        p12 = open_payload(onboard(http, name, done["result"]).json(), TRANSPORT_256)
        again = pkcs12.load_key_and_certificates(p12, b"renewed")[0]
        assert isinstance(again, rsa.RSAPrivateKey) and again.private_numbers() == key.private_numbers()

        officer = as_approver(name, key)
        label = unique("hsm-ska")
        assert create_ska_key(http, label, onboarded_policy(name)).status_code == 201
        request_id = sign_async(http, label, b"signed on the token")
        (task,) = http.post("/v1/filteredSignApprovalTask", json={
            **officer.authentication(live.clock.now()), "requestId": request_id}).json()["tasks"]
        assert http.post("/v1/approval", json=officer.send_approval(task)).status_code == 200
        assert status(http, request_id)["status"] == "EXECUTED"


def test_every_call_is_audited_without_secrets(http: httpx.Client, server: ClockServer) -> None:
    name = unique("audited")
    code = create(http, name, "audit-backup-secret")
    assert_tsb_error(onboard(http, name, "999999999999"), 412, 400)
    assert onboard(http, name, code).status_code == 200
    renewed = http.post("/v1/approverManagement/renewOneTimeCode", json={"approverName": name}).json()["oneTimeCode"]
    restored = http.post("/v1/approverManagement/restoreFromBackup", json={"approverName": name}).json()["oneTimeCode"]
    request_id = http.post("/v1/approverManagement/restoreFromBackup/forgotPassword", json={
        "approverName": name, "newBackupPassword": "audit-new-secret"}).json()["unwrapRequestId"]
    onboarding_status(http)
    assert http.delete(f"/v1/approverManagement/delete/{name}").status_code == 200
    records = list(AuditRepository(server.app.state.db).records("default"))
    mine = [(r["operation"], r["outcome"], r["error_code"]) for r in records if r["key_label"] == name]
    for operation, outcome, error_code in (
            ("createApprover", "ok", None), ("onboardApprover", "error", 412), ("onboardApprover", "ok", None),
            ("renewApproverOneTimeCode", "ok", None), ("restoreApprover", "ok", None),
            ("deleteApprover", "ok", None)):
        assert (operation, outcome, error_code) in mine, mine
    restore = {r["operation"] for r in records if r["ska_request_id"] == request_id}
    assert {"requestApproverRestore", "executeApproverRestore"} <= restore
    assert "approverOnboardingStatus" in {r["operation"] for r in records}
    dump = json.dumps(records, default=str)
    for secret in ("audit-backup-secret", "audit-new-secret", code, renewed, restored, TRANSPORT_256):
        assert secret not in dump


def test_roles(tmp_path: Path) -> None:
    """approverKeyManagement manages approvers; approver onboards (both onboarding paths); another
    role's API key is refused with 631, as the TSB does."""
    managers, approvers, operations = "mgr-" + "k" * 24, "apr-" + "k" * 24, "ops-" + "k" * 24
    settings = soft_settings(tmp_path, dev=False, api_keys_approver_key_management=[managers],
                             api_keys_approver=[approvers], api_keys_key_operation=[operations])
    with LiveServer(settings) as live, live.client(headers={"X-API-KEY": managers}) as manager, \
            live.client(headers={"X-API-KEY": approvers}) as approver, \
            live.client(headers={"X-API-KEY": operations}) as operator:
        name = unique("roles")
        for other in (approver, operator):
            assert_tsb_error(other.put("/v1/approverManagement/create", json={
                "approverName": name, "algorithm": "RSA", "backupPassword": "x"}), 631, 401)
            assert_tsb_error(other.get("/v1/approverManagement/onboarding/status"), 631, 401)
            assert_tsb_error(other.delete(f"/v1/approverManagement/delete/{name}"), 631, 401)
        code = create(manager, name)
        assert_tsb_error(onboard(manager, name, code), 631, 401)  # /v1/approver/onboard: the approver's
        assert_tsb_error(onboard(operator, name, code, path="/v1/approverManagement/onboard"), 631, 401)
        assert onboard(approver, name, code, path="/v1/approverManagement/onboard").status_code == 200
        assert name in onboarding_status(manager)["onboarded"]


def test_a_bad_backup_key_policy_stops_start_up(tmp_path: Path) -> None:
    for text in ("{not json", json.dumps({"ruleUse": {"tokens": "x"}})):
        with pytest.raises(ConfigError, match="HSMGATE_APPROVER_BACKUP_KEY_POLICY"):
            create_app(soft_settings(tmp_path / str(len(text)), approver_backup_key_policy=text))
