"""POST /v1/synchronousSignBatch and /v1/verifyBatch over real HTTP; every signature is checked
independently with ``cryptography`` against the publicKey the key endpoint returned."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tests.helpers import LiveServer, assert_tsb_error, soft_settings, unique

ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def create_key(client: httpx.Client, body: dict[str, Any]) -> tuple[str, Any]:
    label = unique("batch")
    response = client.post("/v1/key", json={"label": label, "attributes": ATTRIBUTES, **body})
    assert response.status_code == 201, response.text
    public = serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))
    return label, public


@pytest.fixture(scope="module")
def keys(soft_server: LiveServer) -> Iterator[dict[str, tuple[str, Any]]]:
    with soft_server.client() as client:
        yield {
            "ed": create_key(client, {"algorithm": "ED", "curveOid": "1.3.101.112"}),
            "ec": create_key(client, {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"}),
            "rsa": create_key(client, {"algorithm": "RSA", "keySize": 2048}),
        }


def check(public: Any, algorithm: str, payload: bytes, signature: bytes) -> None:
    """Raises InvalidSignature unless ``signature`` is valid (independent of hsmgate)."""
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, payload)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, rsa.RSAPublicKey) and algorithm == "SHA256_WITH_RSA_PSS"
        public.verify(signature, payload, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


ALGORITHM = {"ed": "EDDSA", "ec": "SHA256_WITH_ECDSA", "rsa": "SHA256_WITH_RSA_PSS"}


def test_a_batch_is_signed_in_request_order_and_verifies_independently(
        client: httpx.Client, keys: dict[str, tuple[str, Any]]) -> None:
    items = [(kind, f"payload {i} for {kind}".encode()) for i in range(5) for kind in ("ed", "ec", "rsa")]
    body = {"signRequests": [{"payload": b64(p), "signKeyName": keys[k][0], "signatureAlgorithm": ALGORITHM[k]}
                             for k, p in items]}
    response = client.post("/v1/synchronousSignBatch", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    results = response.json()["results"]
    assert len(results) == len(items)
    for (kind, payload), result in zip(items, results, strict=True):
        assert set(result) == {"signature"}
        check(keys[kind][1], ALGORITHM[kind], payload, base64.b64decode(result["signature"]))
    # an item signed in a batch is the same as a single request's signature (Ed25519 is deterministic)
    single = client.post("/v1/synchronousSign", json={"signRequest": body["signRequests"][0]}).json()
    assert single["signature"] == results[0]["signature"]


def test_one_bad_item_does_not_sink_the_batch(client: httpx.Client, keys: dict[str, tuple[str, Any]]) -> None:
    ed = keys["ed"][0]
    good = {"payload": b64(b"ok"), "signKeyName": ed, "signatureAlgorithm": "EDDSA"}
    body = {"signRequests": [
        good,
        {**good, "signKeyName": unique("missing")},                     # 650
        {**good, "payload": "not base64!"},                              # 600 naming the field
        {**good, "signatureAlgorithm": "NO_SUCH_ALGORITHM"},             # 600 enum
        {**good, "signatureAlgorithm": "SHA256_WITH_ECDSA"},             # 607 key type mismatch
        {**good, "keyPassword": "secret"},                               # 620: the key has no password
        "not an object",                                                 # 600
        {**good, "signatureType": "RAW"},                                # fine for Ed25519 (ignored)
    ]}
    response = client.post("/v1/synchronousSignBatch", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 8
    check(keys["ed"][1], "EDDSA", b"ok", base64.b64decode(results[0]["signature"]))
    check(keys["ed"][1], "EDDSA", b"ok", base64.b64decode(results[7]["signature"]))
    codes = [r.get("errorCode") for r in results]
    assert codes == [None, 650, 600, 600, 607, 620, 600, None]
    for result in results[1:7]:
        assert set(result) == {"errorCode", "reason", "message"}
    assert results[1]["reason"] == "res.error.key.not.existent"
    assert "'signRequests[2].payload'" in results[2]["message"]
    assert "'signRequests[3].signatureAlgorithm'" in results[3]["message"]
    assert "signRequests[5].keyPassword" in results[5]["message"]
    assert "'signRequests[6]'" in results[6]["message"]


@pytest.mark.parametrize("body, field", [
    ({"signRequests": []}, "'signRequests' must not be empty"),
    ({}, "'signRequests'"),
    ({"signRequests": {"payload": "AA=="}}, "'signRequests'"),
])
def test_malformed_batches_are_refused_naming_the_field(client: httpx.Client, body: dict[str, Any],
                                                        field: str) -> None:
    response = client.post("/v1/synchronousSignBatch", json=body)
    assert response.status_code == 400
    assert response.json()["errorCode"] == 600 and field in response.json()["message"]


def test_the_batch_limit_is_configurable(tmp_path: Any) -> None:
    with LiveServer(soft_settings(tmp_path, max_batch=3)) as server, server.client() as client:
        item = {"payload": "AA==", "signKeyName": "x", "signatureAlgorithm": "EDDSA"}
        response = client.post("/v1/synchronousSignBatch", json={"signRequests": [item] * 4})
        assert_tsb_error(response, 600, 400)
        assert response.json()["message"] == "'signRequests' must hold at most 3 items, got 4"
        response = client.post("/v1/verifyBatch", json={"verifyRequests": [{}] * 4})
        assert response.status_code == 400 and "'verifyRequests' must hold at most 3" in response.json()["message"]
        assert client.post("/v1/synchronousSignBatch", json={"signRequests": [item] * 3}).status_code == 200


def test_default_limit_is_1000(client: httpx.Client) -> None:
    item = {"payload": "AA==", "signKeyName": "x", "signatureAlgorithm": "EDDSA"}
    response = client.post("/v1/synchronousSignBatch", json={"signRequests": [item] * 1001})
    assert response.status_code == 400 and "at most 1000 items, got 1001" in response.json()["message"]


def test_verify_batch(client: httpx.Client, keys: dict[str, tuple[str, Any]]) -> None:
    ec_label = keys["ec"][0]
    signed = client.post("/v1/synchronousSignBatch", json={"signRequests": [
        {"payload": b64(b"one"), "signKeyName": ec_label, "signatureAlgorithm": "SHA256_WITH_ECDSA"},
        {"payload": b64(b"one"), "signKeyName": ec_label, "signatureAlgorithm": "SHA256_WITH_ECDSA",
         "signatureType": "RAW"},
    ]}).json()["results"]
    der, raw = (base64.b64decode(r["signature"]) for r in signed)
    check(keys["ec"][1], "SHA256_WITH_ECDSA", b"one", der)
    item = {"signKeyName": ec_label, "signatureAlgorithm": "SHA256_WITH_ECDSA", "payload": b64(b"one")}
    response = client.post("/v1/verifyBatch", json={"verifyRequests": [
        {**item, "signature": b64(der)},
        {**item, "signature": b64(raw)},                       # raw r||s is accepted too
        {**item, "payload": b64(b"two"), "signature": b64(der)},
        {**item, "signature": b64(b"\x30\x00")},                # malformed: simply not valid
        {**item, "signKeyName": unique("missing"), "signature": b64(der)},
        {**item, "signature": "%%%"},
    ]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[:4] == [{"signatureValid": True}, {"signatureValid": True},
                           {"signatureValid": False}, {"signatureValid": False}]
    assert results[4]["errorCode"] == 650
    assert results[5]["errorCode"] == 600 and "'verifyRequests[5].signature'" in results[5]["message"]
    with pytest.raises(InvalidSignature):
        check(keys["ec"][1], "SHA256_WITH_ECDSA", b"two", der)


def test_batch_endpoints_are_documented(client: httpx.Client) -> None:
    document = client.get("/v3/api-docs").json()
    for path, operation_id, field in (("/v1/synchronousSignBatch", "synchronousSignBatch", "signRequests"),
                                      ("/v1/verifyBatch", "verifyBatch", "verifyRequests")):
        post = document["paths"][path]["post"]
        assert post["operationId"] == operation_id
        assert post["tags"] == ["Synchronous Key Operations"]
        ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        schema = document["components"]["schemas"][ref]["properties"][field]
        assert schema["type"] == "array" and schema["minItems"] == 1 and "$ref" in schema["items"]


def test_interleaved_keys_keep_request_order_and_each_item_is_audited(tmp_path: Any) -> None:
    """Items are signed per key (one look-up per key and algorithm): results still come back in
    request order, a bad digest fails alone, and the audit chain has one record per key that lists
    every item: its index, algorithm, payload digest and outcome."""
    from hsmgate.store.audit import AuditRepository

    with LiveServer(soft_settings(tmp_path, audit_enabled=True)) as server, server.client() as client:
        ed, ed_public = create_key(client, {"algorithm": "ED", "curveOid": "1.3.101.112"})
        p256, p256_public = create_key(client, {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"})
        before = len(list(AuditRepository(server.app.state.db).records("default")))
        digest = hashlib.sha256(b"m").digest()
        items = []
        for index in range(6):
            items.append({"payload": b64(b"e%d" % index), "signKeyName": ed, "signatureAlgorithm": "EDDSA"})
            payload = digest if index != 3 else b"short"
            items.append({"payload": b64(payload), "signKeyName": p256, "signatureAlgorithm": "NONE_WITH_ECDSA"})
        response = client.post("/v1/synchronousSignBatch", json={"signRequests": items})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == 12
        for index in range(6):
            ed_public.verify(base64.b64decode(results[2 * index]["signature"]), b"e%d" % index)
            if index == 3:
                assert results[7]["errorCode"] != 0 and "signature" not in results[7]
                continue
            p256_public.verify(base64.b64decode(results[2 * index + 1]["signature"]), digest,
                             ec.ECDSA(Prehashed(hashes.SHA256())))
        records = list(AuditRepository(server.app.state.db).records("default"))[before:]
        signs = [r for r in records if r["operation"] == "synchronousSign"]
        assert [r["key_label"] for r in signs] == [ed, p256]  # one record per key, listing its items
        assert [(r["outcome"], r["error_code"]) for r in signs] == [("ok", None), ("error", results[7]["errorCode"])]
        listed = {r["key_label"]: json.loads(r["items"]) for r in signs}
        assert [i["index"] for i in listed[ed]] == [0, 2, 4, 6, 8, 10]
        assert [i["index"] for i in listed[p256]] == [1, 3, 5, 7, 9, 11]
        for item in listed[ed] + listed[p256]:
            sent = items[item["index"]]
            assert item["algorithm"] == sent["signatureAlgorithm"]
            assert item["payloadSha256"] == hashlib.sha256(base64.b64decode(sent["payload"])).hexdigest()
            assert (item["outcome"], item["errorCode"]) == (("error", results[7]["errorCode"]) if item["index"] == 7
                                                            else ("ok", None))
