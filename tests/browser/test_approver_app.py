"""The browser approver app (``/approver/``) in real headless Chromium, every request to another
host aborted: two approvers in two browser contexts (their own storage), a 2-of-2 SKA key, an
asynchronous sign request approved in both browsers and its signature checked with the OpenSSL
command line; a rejection; the approver key non-extractable; the task view's decoding checked
against the server's codec."""

from __future__ import annotations

import base64
import datetime
import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, Page, expect
from pydantic import SecretStr

from hsmgate.domain.ska.approval_token import ApprovalToBeSigned, HsmTimestamp, Operation
from tests.browser.offline import OfflinePage
from tests.helpers import LiveServer, b64, soft_settings, unique
from tests.softhsm import SoftHsmToken

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]  # Playwright's driver, Chromium, openssl

ROOT = Path(__file__).resolve().parents[2]
#: Where the task view's screenshot is written (git-ignored); docs/approver-task-view.png is a copy.
ARTIFACTS = ROOT / "test-artifacts"
OPENSSL = shutil.which("openssl")
P256 = "1.2.840.10045.3.1.7"
SIGN_ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "destroyable": True}


# -- servers ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["soft", pytest.param("pkcs11", marks=pytest.mark.pkcs11)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with the real clock (the browser signs its own time) on each backend."""
    data_dir = tmp_path_factory.mktemp(f"approver-app-{request.param}")
    overrides: dict[str, object] = {"ska_scheduler_interval": 0.1}
    if request.param == "pkcs11":
        factory: Callable[[str], SoftHsmToken] = request.getfixturevalue("softhsm_factory")
        hsm = factory(unique("approver-app"))
        overrides |= {"backend": "pkcs11", "pkcs11_module": hsm.module_path, "pkcs11_token_label": hsm.token_label,
                      "pkcs11_pin": SecretStr(hsm.pin)}
    with LiveServer(soft_settings(data_dir, **overrides)) as live:
        yield live


@pytest.fixture()
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


# -- approvers in browsers ----------------------------------------------------------------------------


class BrowserApprover:
    """One approver: a browser context of its own with the app open and registered."""

    def __init__(self, browser: Browser, server: LiveServer, name: str) -> None:
        self.name = name
        self.offline = OfflinePage(browser, server)
        self.page: Page = self.offline.page
        self.url = f"{server.url}/approver/"
        self.code = ""
        self.certificate = b""
        self.spki = b""

    def open(self) -> None:
        self.page.goto(self.url)
        self.page.wait_for_selector("#register:not([hidden]), #tasks:not([hidden])")

    def register(self, http: httpx.Client, *, api_key: str | None = None) -> None:
        """Created over HTTP (approverKeyManagement); registered in the page's form with the
        one-time code and the backup password, as a person would."""
        backup_password = f"backup of {self.name}"
        self.code = create_approver(http, self.name, backup_password)
        self.fill_in(self.code, backup_password, api_key)
        expect(self.page.locator("#message")).to_contain_text(f"Registered as {self.name}", timeout=60_000)
        self.page.wait_for_selector("#tasks:not([hidden])")
        assert self.page.locator("#identity-name").inner_text() == self.name
        certificate = onboarding_status(http)["onboarded"][self.name]
        self.certificate = base64.b64decode(certificate)
        self.spki = x509.load_der_x509_certificate(self.certificate).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def fill_in(self, code: str, backup_password: str, api_key: str | None = None) -> None:
        self.open()
        self.page.fill("#approver-name", self.name)
        self.page.fill("#one-time-code", code)
        self.page.fill("#backup-password", backup_password)
        if api_key is not None:
            self.page.fill("#api-key", api_key)
        self.page.click("#register-button")

    def open_task(self, label: str) -> str:
        """Wait for the task on key ``label`` to appear by itself, open it; the task view's text."""
        row = self.page.locator("#task-rows tr", has_text=label)
        row.wait_for()
        row.locator("button.view").click()
        self.page.wait_for_selector("#task-view:not([hidden])")
        return self.page.locator("#task-details").inner_text()

    def decide(self, button: str) -> str:
        self.page.locator(f"#{button}").click()
        message = self.page.locator("#message")
        expect(message).to_contain_text("Task")  # the page's CSP forbids wait_for_function's eval
        return message.inner_text()

    def assert_offline_and_clean(self, *, console: bool = True) -> None:
        assert self.offline.left_host == [], "requests that left the host"
        assert self.offline.errors == []
        if console:
            assert self.offline.console_errors == []  # a Content-Security-Policy violation would be one
        assert not [text for text in self.offline.console_errors if "Content Security Policy" in text]


def create_approver(http: httpx.Client, name: str, backup_password: str) -> str:
    """``PUT /v1/approverManagement/create``: the one-time code."""
    response = http.put("/v1/approverManagement/create", json={
        "approverName": name, "algorithm": "RSA", "keySize": 2048, "backupPassword": backup_password, "validity": 30})
    assert response.status_code == 200, response.text
    return str(response.json()["oneTimeCode"])


def onboarding_status(http: httpx.Client) -> dict[str, dict[str, str]]:
    body = http.get("/v1/approverManagement/onboarding/status").json()
    return {state: {e["approverName"]: e["approverCertificate"] for e in body[state]} for state in body}


@pytest.fixture()
def approvers(browser: Browser, server: LiveServer, http: httpx.Client) -> Iterator[list[BrowserApprover]]:
    """Two approvers, each onboarded in a browser context of its own."""
    made = []
    for name in (unique("alice"), unique("bob")):
        approver = BrowserApprover(browser, server, name)
        made.append(approver)
        approver.register(http)
    yield made
    for approver in made:
        approver.offline.close()


# -- requests over HTTP -------------------------------------------------------------------------------


def two_of_two_key(http: httpx.Client, approvers: list[BrowserApprover], *, timelock: int = 0,
                   timeout: int = 3600) -> tuple[str, bytes]:
    """An EC P-256 SKA key whose use needs both approvers; its label and SPKI."""
    label = unique("approver-app")
    group = {"name": "Officers", "quorum": len(approvers), "approvals": [  # named as onboarded (TSB ≥ 2.0.1)
        {"type": "onboarded_approver_certificate", "name": a.name} for a in approvers]}
    policy = {"ruleUse": {"tokens": [{"name": "Payments", "timelock": timelock, "timeout": timeout, "groups": [group]}]},
              "ruleBlock": None, "ruleUnblock": None, "ruleModify": None, "keyStatus": {"blocked": False}}
    response = http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": P256,
                                          "attributes": SIGN_ATTRIBUTES, "policy": policy})
    assert response.status_code == 201, response.text
    return label, base64.b64decode(response.json()["json"]["publicKey"])


def sign_request(http: httpx.Client, label: str, payload: bytes, meta: str) -> str:
    response = http.post("/v1/sign", json={"signRequest": {
        "payload": b64(payload), "payloadType": "UNSPECIFIED", "signKeyName": label,
        "signatureAlgorithm": "SHA256_WITH_ECDSA", "metaData": b64(meta.encode())}})
    assert response.status_code == 201, response.text
    return str(response.json()["signRequestId"])


def wait_status(http: httpx.Client, request_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        answer = http.get(f"/v1/request/{request_id}").json()
        if answer["status"] == wanted or time.monotonic() > deadline:
            assert answer["status"] == wanted, answer
            return dict(answer)
        time.sleep(0.2)


def openssl_verifies(spki: bytes, payload: bytes, signature: bytes, directory: Path) -> bool:
    """``openssl dgst -sha256 -verify`` with the key's public key: an implementation not hsmgate's."""
    assert OPENSSL is not None, "the OpenSSL CLI is required by this test"
    (directory / "key.der").write_bytes(spki)
    (directory / "payload").write_bytes(payload)
    (directory / "signature").write_bytes(signature)
    subprocess.run([OPENSSL, "pkey", "-pubin", "-inform", "DER", "-in", "key.der", "-out", "key.pub"],
                   cwd=directory, check=True, capture_output=True)
    result = subprocess.run([OPENSSL, "dgst", "-sha256", "-verify", "key.pub", "-signature", "signature", "payload"],
                            cwd=directory, capture_output=True, text=True, check=False)
    return result.returncode == 0 and "Verified OK" in result.stdout


# -- tests --------------------------------------------------------------------------------------------


def test_two_approvers_approve_a_sign_request_in_their_browsers(
        http: httpx.Client, approvers: list[BrowserApprover], tmp_path: Path) -> None:
    alice, bob = approvers
    label, key_spki = two_of_two_key(http, approvers)
    payload = b"Pay 1,250.00 CHF to ACME AG, invoice 2026-117"
    request_id = sign_request(http, label, payload, "payments app, user mia")

    shown = alice.open_task(label)
    for fact in ("Sign", label, "SHA256_WITH_ECDSA", "payments app, user mia", hashlib.sha256(payload).hexdigest(),
                 payload.decode(), "Token Payments", "no time lock", "expires after 1 h at",
                 "Group Officers", "0 of 2 approvals given, 2 still needed", f"{request_id}: PENDING"):
        assert fact in shown, (fact, shown)
    ARTIFACTS.mkdir(exist_ok=True)
    alice.page.screenshot(path=str(ARTIFACTS / "approver-task-view.png"), full_page=True)
    assert "approved" in alice.decide("approve")
    expect(alice.page.locator("#task-rows tr", has_text=label)).to_have_count(0)  # decided: gone from the list

    shown = bob.open_task(label)
    assert "1 of 2 approvals given, 1 still needed" in shown, shown
    assert "approved" in bob.decide("approve")

    done = wait_status(http, request_id, "EXECUTED")
    assert sorted(done["approvedBy"]) == sorted(b64(a.spki) for a in approvers)
    assert openssl_verifies(key_spki, payload, base64.b64decode(done["result"]), tmp_path)
    for approver in approvers:
        approver.assert_offline_and_clean()


@pytest.mark.parametrize("server", ["soft"], indirect=True)
def test_a_rejection_in_one_browser_rejects_the_request(http: httpx.Client, approvers: list[BrowserApprover]) -> None:
    alice, bob = approvers
    label, _ = two_of_two_key(http, approvers, timelock=120, timeout=600)
    request_id = sign_request(http, label, bytes(range(40)), "batch job <b>7</b>")
    shown = alice.open_task(label)  # Alice looks at it, Bob rejects it meanwhile
    assert "time lock 2 min, executable from" in shown and "expires after 10 min at" in shown, shown
    shown = bob.open_task(label)
    assert "Payload (hex)" in shown and bytes(range(40)).hex() in shown, shown  # not text: shown as hex
    assert "batch job <b>7</b>" in shown  # text, never markup
    assert "rejected" in bob.decide("reject")
    rejected = wait_status(http, request_id, "REJECTED")
    assert rejected["rejectedBy"] == [b64(bob.spki)]
    message = alice.decide("approve")  # too late: the server's error, in words
    assert message.startswith("Task ") and "was not approved: 652 res.error." in message, message
    expect(alice.page.locator("#task-rows tr", has_text=label)).to_have_count(0)  # the request is over
    bob.assert_offline_and_clean()
    alice.assert_offline_and_clean(console=False)  # Chromium logs the answer 404


@pytest.mark.parametrize("server", ["soft"], indirect=True)
def test_the_approver_key_cannot_be_read_out_of_the_browser(approvers: list[BrowserApprover]) -> None:
    alice = approvers[0]
    found = alice.page.evaluate("""async () => {
        const { loadIdentity } = await import("/approver/keystore.js");
        const identity = await loadIdentity();
        const tries = [];
        for (const format of ["pkcs8", "jwk"]) {
            try { await crypto.subtle.exportKey(format, identity.privateKey); tries.push(format + ": exported"); }
            catch (error) { tries.push(format + ": " + error.name); }
        }
        return { fields: Object.keys(identity).sort(), extractable: identity.privateKey.extractable,
                 usages: identity.privateKey.usages, algorithm: identity.privateKey.algorithm.name, tries };
    }""")
    assert found["tries"] == ["pkcs8: InvalidAccessError", "jwk: InvalidAccessError"]
    assert found["extractable"] is False and found["usages"] == ["sign"]
    assert found["algorithm"] == "RSASSA-PKCS1-v1_5"
    # the container, the backup password and the transport password are not kept
    assert found["fields"] == ["apiKey", "certificate", "fingerprint", "name", "privateKey", "publicKey"]
    alice.assert_offline_and_clean()


@pytest.mark.parametrize("server", ["soft"], indirect=True)
def test_the_task_view_decodes_tokens_as_the_server_codec_does(browser: Browser, server: LiveServer) -> None:
    offline = OfflinePage(browser, server)
    try:
        offline.page.goto(f"{server.url}/approver/")
        moment = datetime.datetime(2026, 12, 8, 1, 2, 3, tzinfo=datetime.UTC)
        stamp = HsmTimestamp.at(moment, b"pay 5", "timestamp-key")
        timed = ApprovalToBeSigned.timed(Operation.USE, "key/1", stamp, bytes(range(70)))
        time_less = ApprovalToBeSigned.time_less(Operation.MODIFY, b"\x01\x02\x03")
        decoded = offline.page.evaluate("""async (tokens) => {
            const { decodeApproval } = await import("/approver/token.js");
            const out = [];
            for (const text of tokens) {
                const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
                try {
                    const t = decodeApproval(bytes);
                    out.push({ operation: t.operation, label: t.label, payload: Array.from(t.payload),
                               payloadTag: t.payloadTag, timeLess: t.timeLess,
                               moment: t.timestamp ? t.timestamp.moment.toISOString() : null,
                               keyName: t.timestamp ? t.timestamp.keyName : null });
                } catch (error) { out.push({ error: error.constructor.name + ": " + error.message }); }
            }
            return out;
        }""", [b64(timed.encode()), b64(time_less.encode()), b64(timed.encode()[:-1]),
               b64(timed.encode() + b"\x00\x00\x00\x00")])
    finally:
        offline.close()
    assert decoded[0] == {"operation": 1, "label": "key/1", "payload": list(b"pay 5"), "payloadTag": 0x1057,
                          "timeLess": False, "moment": "2026-12-08T01:02:03.000Z", "keyName": "timestamp-key"}
    assert decoded[1] == {"operation": 4, "label": "", "payload": [1, 2, 3], "payloadTag": 0x1058, "timeLess": True,
                          "moment": None, "keyName": None}
    assert decoded[2]["error"].startswith("TokenFormatError: approvalToBeSigned: header says")
    assert decoded[3]["error"].startswith("TokenFormatError: approvalToBeSigned: header says")


@pytest.mark.parametrize("server", ["soft"], indirect=True)
def test_registration_errors_are_shown_and_keep_nothing(browser: Browser, server: LiveServer,
                                                        http: httpx.Client) -> None:
    carol = BrowserApprover(browser, server, unique("carol"))
    try:
        code = create_approver(http, carol.name, "the right password")
        carol.fill_in("000000000000", "the right password")
        expect(carol.page.locator("#message")).to_contain_text("Registration failed: 412 res.error.")
        carol.fill_in(code, "a wrong password")
        expect(carol.page.locator("#message")).to_contain_text(
            "Registration failed: the backup password does not open the key container", timeout=60_000)
        expect(carol.page.locator("#message")).to_contain_text("The one-time code is used up: ask your approver")
        assert carol.page.locator("#register").is_visible() and not carol.page.locator("#tasks").is_visible()
        assert carol.page.input_value("#backup-password") == ""  # the form is cleared at once
        stored = carol.page.evaluate("""async () => {
            const { loadIdentity } = await import("/approver/keystore.js");
            return (await loadIdentity()) === undefined;
        }""")
        assert stored is True
        carol.fill_in(code, "the right password")  # the code was used by the failed attempt
        expect(carol.page.locator("#message")).to_contain_text("Registration failed: 412 res.error.")
        carol.assert_offline_and_clean(console=False)  # the 412 answers are logged by Chromium
    finally:
        carol.offline.close()


API_KEYS = {role: f"{role}-api-key-0123456789abcdef" for role in (
    "key_management", "key_operation", "approver", "approver_key_management")}


@pytest.fixture()
def keyed_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server that wants an API key of each role (not dev mode)."""
    settings = soft_settings(tmp_path, dev=False, ska_scheduler_interval=0.1,
                             **{f"api_keys_{role}": [key] for role, key in API_KEYS.items()})
    with LiveServer(settings) as live:
        yield live


def test_the_api_key_is_sent_where_the_server_wants_one(browser: Browser, keyed_server: LiveServer,
                                                        tmp_path: Path) -> None:
    dave = BrowserApprover(browser, keyed_server, unique("dave"))

    def as_role(role: str) -> httpx.Client:
        return keyed_server.client(headers={"X-API-KEY": API_KEYS[role]})

    try:
        with as_role("approver_key_management") as management:
            code = create_approver(management, dave.name, "dave's backup")
            dave.fill_in(code, "dave's backup")  # no API key: refused before the code is looked at
            expect(dave.page.locator("#message")).to_contain_text("Registration failed: 416 ")
            dave.fill_in(code, "dave's backup", API_KEYS["approver"])
            expect(dave.page.locator("#message")).to_contain_text(f"Registered as {dave.name}", timeout=60_000)
            certificate = onboarding_status(management)["onboarded"][dave.name]
        label = unique("keyed")
        policy = {"ruleUse": {"tokens": [{"name": "T", "timelock": 0, "timeout": 600, "groups": [
            {"name": "G", "quorum": 1, "approvals": [{"type": "certificate", "value": certificate}]}]}]},
            "ruleBlock": None, "ruleUnblock": None, "ruleModify": None, "keyStatus": {"blocked": False}}
        with as_role("key_management") as keys:
            response = keys.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": P256,
                                                  "attributes": SIGN_ATTRIBUTES, "policy": policy})
            assert response.status_code == 201, response.text
            spki = base64.b64decode(response.json()["json"]["publicKey"])
        with as_role("key_operation") as operations:
            request_id = sign_request(operations, label, b"keyed payload", "keyed test")
            dave.open_task(label)  # listed with the approver's API key and signed timestamp
            assert "approved" in dave.decide("approve")
            done = wait_status(operations, request_id, "EXECUTED")
        assert openssl_verifies(spki, b"keyed payload", base64.b64decode(done["result"]), tmp_path)
        dave.assert_offline_and_clean(console=False)  # the 416 answer is logged by Chromium
    finally:
        dave.offline.close()


@pytest.mark.parametrize("server", ["soft"], indirect=True)
def test_a_browser_clock_ahead_of_the_server_is_allowed_for(browser: Browser, server: LiveServer,
                                                             http: httpx.Client) -> None:
    """The server refuses task-list timestamps from its future; the app learns how far its clock is
    ahead from the answers' Date headers and signs a time the server accepts."""
    erin = BrowserApprover(browser, server, unique("erin"))
    try:
        erin.offline.context.clock.install(time=datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=45))
        erin.register(http)  # the onboarding answer's Date header is the first the app sees
        label, _ = two_of_two_key(http, [erin])
        sign_request(http, label, b"late clock", "clock test")
        erin.page.reload()  # a fresh page knows nothing of the server's clock: its first list is refused
        erin.page.locator("#task-rows tr", has_text=label).wait_for()
        assert erin.offline.errors == [] and erin.offline.left_host == []
    finally:
        erin.offline.close()


@pytest.mark.parametrize("server", ["soft"], indirect=True)
@pytest.mark.parametrize("deceptive", ["invoice\u202egnp.exe", "pay\u200b 100", "\ufeffpay\x1b[2J 100"])
def test_payload_text_that_would_show_other_than_it_is_is_shown_as_hex(
        http: httpx.Client, approvers: list[BrowserApprover], deceptive: str) -> None:
    alice = approvers[0]
    label, _ = two_of_two_key(http, approvers)
    payload = deceptive.encode()
    sign_request(http, label, payload, "spoof test")
    shown = alice.open_task(label)
    assert "Payload (hex)" in shown and payload.hex() in shown and "Payload (text)" not in shown, shown


@pytest.mark.parametrize("server", ["soft"], indirect=True)
def test_a_block_request_is_shown_with_the_block_rule(http: httpx.Client, approvers: list[BrowserApprover]) -> None:
    """The view reads the rule of the token's operation: a block request, the key's ruleBlock."""
    alice, bob = approvers
    officers = {"tokens": [{"name": "Blockers", "timelock": 0, "timeout": 0, "groups": [{"name": "Security", "quorum": 1,
                "approvals": [{"type": "onboarded_approver_certificate", "name": alice.name}]}]}]}
    users = {"tokens": [{"name": "Users", "timelock": 0, "timeout": 600, "groups": [{"name": "Anyone", "quorum": 1,
             "approvals": [{"type": "onboarded_approver_certificate", "name": bob.name}]}]}]}
    label = unique("block-me")
    response = http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": P256,
                                          "attributes": SIGN_ATTRIBUTES, "policy": {
                                              "ruleUse": users, "ruleBlock": officers, "ruleUnblock": officers,
                                              "ruleModify": None, "keyStatus": {"blocked": False}}})
    assert response.status_code == 201, response.text
    answer = http.post("/v1/block", json={"blockRequest": {"blockKeyName": label}})
    assert answer.status_code == 201, answer.text
    shown = alice.open_task(label)
    for fact in ("Block the key (EkaOperation 2: block the key)", "Token Blockers", "never expires",
                 "Group Security", "0 of 1 approvals given, 1 still needed (1 approver named)",
                 "no HSM timestamp"):
        assert fact in shown, (fact, shown)
    assert "Users" not in shown and "Anyone" not in shown  # not the use rule
    assert "approved" in alice.decide("approve")
    assert wait_status(http, answer.json()["blockKeyRequestId"], "EXECUTED")["result"] in ("true", None, "")
    alice.assert_offline_and_clean()
