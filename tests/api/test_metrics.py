"""``GET /metrics``: requests by route template and status (the middleware in the app's one stack
sees the key operations too), key operations by key family and algorithm (counted by the key-use
gate, SKA executor included), the audit queue and its commits, SKA requests by state; parsed with
prometheus-client's own parser."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from prometheus_client.parser import text_string_to_metric_families

from hsmgate.domain.algorithms import (
    CIPHER_ALGORITHMS,
    KEY_FAMILIES,
    SIGNATURE_ALGORITHMS,
    UNKNOWN_FAMILY,
    WRAP_METHODS,
)
from hsmgate.domain.clock import ManualClock
from tests.domain.ska.helpers import (
    Approver,
    approve,
    clock_server,
    create_key,
    policy,
    rule,
    sign_request,
    token,
    wait_status,
)
from tests.helpers import LiveServer, soft_settings
from tests.softhsm import SoftHsmToken

P256 = "1.2.840.10045.3.1.7"
ED25519 = "1.3.101.112"
SIGN = {"sign": True, "decrypt": False, "unwrap": False, "destroyable": True}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(http: httpx.Client, **headers: str) -> Samples:
    answer = http.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh server per test: counters start at zero."""
    with LiveServer(soft_settings(tmp_path)) as live:
        yield live


@pytest.fixture()
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def make_key(http: httpx.Client, label: str, algorithm: str, curve: str) -> bytes:
    answer = http.post("/v1/key", json={"label": label, "algorithm": algorithm, "curveOid": curve,
                                        "attributes": SIGN})
    assert answer.status_code == 201, answer.text
    return base64.b64decode(answer.json()["json"]["publicKey"])


def sign(http: httpx.Client, label: str, algorithm: str, payload: bytes = b"payload") -> httpx.Response:
    return http.post("/v1/synchronousSign", json={"signRequest": {"payload": b64(payload), "signKeyName": label,
                                                                  "signatureAlgorithm": algorithm}})


def test_requests_by_route_template_and_status(http: httpx.Client) -> None:
    http.get("/v1/versionInfo")
    http.get("/v1/versionInfo")
    http.get("/v1/request/secret-customer-name")  # 404: no such SKA request
    http.get("/v1/key/another-secret/attributes")  # 404 / 650; the template is /v1/key/{keyName:path}/attributes
    http.get("/no/such/path/for-anyone")
    http.request("PROPFIND", "/v1/versionInfo")  # a method outside the counted set
    samples = scrape(http)
    total = "hsmgate_http_requests_total"
    assert value(samples, total, method="GET", route="/v1/versionInfo", status="200") == 2
    assert value(samples, total, method="GET", route="/v1/request/{id}", status="404") == 1
    assert value(samples, total, method="GET", route="/v1/key/{keyName}/attributes", status="404") == 1
    assert value(samples, total, method="GET", route="<unmatched>", status="404") == 1
    assert value(samples, total, method="other", route="/v1/versionInfo", status="405") == 1
    latency = "hsmgate_http_request_duration_seconds_count"
    assert value(samples, latency, method="GET", route="/v1/versionInfo") == 2
    text = http.get("/metrics").text
    assert "secret-customer-name" not in text and "another-secret" not in text and "for-anyone" not in text and "PROPFIND" not in text


def test_key_operations_by_key_family_and_algorithm(http: httpx.Client) -> None:
    public = load_der_public_key(make_key(http, "metrics-ec", "EC", P256))
    make_key(http, "metrics-ed", "ED", ED25519)
    for payload in (b"one", b"two", b"three"):
        answer = sign(http, "metrics-ec", "SHA256_WITH_ECDSA", payload)
        assert answer.status_code == 200
        public.verify(base64.b64decode(answer.json()["signature"]), payload, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
    assert sign(http, "metrics-ed", "EDDSA").status_code == 200
    assert sign(http, "no-such-key", "SHA256_WITH_ECDSA").status_code == 404
    assert sign(http, "metrics-ec", "EDDSA").status_code == 400  # the algorithm does not fit the key
    batch = http.post("/v1/synchronousSignBatch", json={"signRequests": [
        {"payload": b64(b"a"), "signKeyName": "metrics-ed", "signatureAlgorithm": "EDDSA"},
        {"payload": b64(b"b"), "signKeyName": "metrics-ed", "signatureAlgorithm": "EDDSA"},
        {"payload": b64(b"c"), "signKeyName": "no-such-key", "signatureAlgorithm": "EDDSA"},
    ]})
    assert batch.status_code == 200 and "errorCode" in batch.json()["results"][2]
    verify = http.post("/v1/verify", json={"verifySignatureRequest": {
        "signKeyName": "metrics-ed", "signatureAlgorithm": "EDDSA", "payload": b64(b"x"), "signature": b64(b"y")}})
    assert verify.json() == {"signatureValid": False}
    samples = scrape(http)
    ops = "hsmgate_key_operations_total"
    sign_op = {"operation": "synchronousSign"}
    assert value(samples, ops, **sign_op, key_type="EC", algorithm="SHA256_WITH_ECDSA", outcome="ok") == 3
    assert value(samples, ops, **sign_op, key_type="EC", algorithm="SHA256_WITH_ECDSA", outcome="error") == 1
    assert value(samples, ops, **sign_op, key_type="ED", algorithm="EDDSA", outcome="ok") == 3
    assert value(samples, ops, **sign_op, key_type="ED", algorithm="EDDSA", outcome="error") == 2
    assert value(samples, ops, operation="verifySignature", key_type="ED", algorithm="EDDSA", outcome="ok") == 1
    # the HTTP side saw the same key operations: no road around the middleware
    assert value(samples, "hsmgate_http_requests_total", method="POST", route="/v1/synchronousSign", status="200") == 4
    assert value(samples, "hsmgate_http_requests_total", method="POST", route="/v1/synchronousSignBatch",
                 status="200") == 1


def test_audit_queue_and_commits(http: httpx.Client) -> None:
    before = scrape(http)
    make_key(http, "metrics-audit", "EC", P256)
    for _ in range(5):
        assert sign(http, "metrics-audit", "SHA256_WITH_ECDSA").status_code == 200
    after = scrape(http)
    committed = "hsmgate_audit_records_total"
    written = value(after, committed, outcome="committed") - value(before, committed, outcome="committed")
    assert written >= 6  # the key's creation (started, ok) and five signatures, each answered after its commit
    assert value(after, "hsmgate_audit_records_total", outcome="failed") == 0
    assert value(after, "hsmgate_audit_queue_depth") == 0  # every answered request's record is committed
    commits = "hsmgate_audit_commit_seconds_count"
    assert value(after, commits) > value(before, commits)


def test_openmetrics_on_request(http: httpx.Client) -> None:
    answer = http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")


def test_ska_requests_by_state_and_executor_counted(tmp_path: Path) -> None:
    approver, clock = Approver("ec"), ManualClock()
    with clock_server(tmp_path, clock) as server, server.client() as http:
        create_key(http, "metrics-ska", policy(rule(token((1, [approver])))))
        first, second = sign_request(http, "metrics-ska"), sign_request(http, "metrics-ska")
        samples = scrape(http)
        assert value(samples, "hsmgate_ska_requests", partition="default", status="PENDING") == 2
        assert approve(http, approver, clock, first).status_code == 200
        wait_status(http, first, "EXECUTED")
        samples = scrape(http)
        assert value(samples, "hsmgate_ska_requests", partition="default", status="PENDING") == 1
        assert value(samples, "hsmgate_ska_requests", partition="default", status="EXECUTED") == 1
        # the scheduler executed the signature through the gate: counted like a caller's
        assert value(samples, "hsmgate_key_operations_total", operation="synchronousSign", key_type="EC",
                     algorithm="SHA256_WITH_ECDSA", outcome="ok") == 1
        assert second


def test_every_algorithm_has_a_key_family() -> None:
    names = [*SIGNATURE_ALGORITHMS, *CIPHER_ALGORITHMS, *WRAP_METHODS]
    assert all(KEY_FAMILIES.get(name, UNKNOWN_FAMILY) != UNKNOWN_FAMILY for name in names)
    assert KEY_FAMILIES["ML_DSA"] == "ML-DSA" and KEY_FAMILIES["SHA2_256_WITH_SLH_DSA"] == "SLH-DSA"
    assert KEY_FAMILIES["SHA256_WITH_RSA_PSS"] == "RSA" and KEY_FAMILIES["AES_GCM"] == "AES"
    assert KEY_FAMILIES["RSA_WRAP_OAEP"] == "RSA" and KEY_FAMILIES["AES_WRAP_PAD_EC"] == "AES"


@pytest.mark.pkcs11
def test_pkcs11_session_pool(softhsm_factory: Callable[[str], SoftHsmToken], tmp_path: Path) -> None:
    token_ = softhsm_factory("metrics-pool")
    settings = soft_settings(tmp_path, backend="pkcs11", pkcs11_module=token_.module_path,
                             pkcs11_token_label=token_.token_label, pkcs11_pin=token_.pin, pkcs11_pool_size=3)
    with LiveServer(settings) as live, live.client() as http:
        make_key(http, "metrics-pool-key", "EC", P256)
        assert sign(http, "metrics-pool-key", "SHA256_WITH_ECDSA").status_code == 200
        samples = scrape(http)
    assert value(samples, "hsmgate_pkcs11_pool_size", partition="default") == 3
    assert 1 <= value(samples, "hsmgate_pkcs11_sessions", partition="default", state="open") <= 3
    assert value(samples, "hsmgate_pkcs11_sessions", partition="default", state="in_use") == 0  # all checked in
    assert value(samples, "hsmgate_pkcs11_session_waiters", partition="default") == 0


def test_soft_partitions_report_no_pool(http: httpx.Client) -> None:
    assert not [key for key in scrape(http) if key[0].startswith("hsmgate_pkcs11_")]
