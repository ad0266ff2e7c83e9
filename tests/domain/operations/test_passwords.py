"""Key passwords: ``password`` on POST /v1/key (a string or the ``char[]`` array form), required as
``keyPassword`` / ``password`` / ``masterKeyPassword`` by every operation on the key (620 when
missing or wrong), changed with POST /v1/key/changePassword (key must be modifiable)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import assert_tsb_error, b64, unique
from tests.domain.operations.helpers import OPEN

EC = {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"}


def create(http: httpx.Client, password: Any, attributes: dict[str, Any] | None = None,
           body: dict[str, Any] | None = None) -> str:
    label = unique("pw")
    response = http.post("/v1/key", json={"label": label, **(body or EC), "password": password,
                                          "attributes": attributes or OPEN})
    assert response.status_code == 201, response.text
    return label


def sign(http: httpx.Client, label: str, password: Any) -> httpx.Response:
    return http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(b"x"), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA", "keyPassword": password}})


@pytest.mark.parametrize("given", ["s3cret", list("s3cret")], ids=["string", "char-array"])
def test_password_in_either_form_protects_every_operation(http: httpx.Client, given: Any) -> None:
    label = create(http, given)
    for form in ("s3cret", list("s3cret")):
        assert sign(http, label, form).status_code == 200
    for wrong in (None, "", [], "S3cret", list("s3cre")):
        body = assert_tsb_error(sign(http, label, wrong), 620, 400)
        assert body["reason"] == "res.error.key.password.mismatch"
    # attributes, verify, export, delete ask for it too
    assert_tsb_error(http.post("/v1/key/attributes", json={"label": label}), 620, 400)
    assert http.post("/v1/key/attributes", json={"label": label, "password": "s3cret"}).status_code == 200
    assert_tsb_error(http.get(f"/v1/key/{label}/attributes"), 620, 400)
    verify = {"signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA", "payload": b64(b"x"),
              "signature": sign(http, label, "s3cret").json()["signature"]}
    assert_tsb_error(http.post("/v1/verify", json={"verifySignatureRequest": verify}), 620, 400)
    assert http.post("/v1/verify", json={"verifySignatureRequest": {**verify, "masterKeyPassword": "s3cret"}}).json() \
        == {"signatureValid": True}
    assert_tsb_error(http.post("/v1/key/export/plain", json={"label": label, "password": "nope"}), 620, 400)
    assert http.post("/v1/key/export/plain", json={"label": label, "password": "s3cret"}).status_code == 200
    assert_tsb_error(http.delete(f"/v1/key/{label}"), 620, 400)
    assert_tsb_error(http.post("/v1/key/deleteKey", json={"label": label}), 620, 400)
    assert http.post("/v1/key/deleteKey", json={"label": label, "password": list("s3cret")}).status_code == 200
    assert label not in http.get("/v1/key").json()


def test_password_on_cipher_wrap_hmac_and_certificates(http: httpx.Client) -> None:
    aes = create(http, "pw-aes", body={"algorithm": "AES", "keySize": 256})
    request = {"payload": b64(b"x"), "encryptKeyName": aes, "cipherAlgorithm": "AES_GCM"}
    assert_tsb_error(http.post("/v1/encrypt", json={"encryptRequest": request}), 620, 400)
    body = http.post("/v1/encrypt", json={"encryptRequest": {**request, "keyPassword": "pw-aes"}}).json()
    decrypt = {"encryptedPayload": body["encryptedPayload"], "decryptKeyName": aes, "cipherAlgorithm": "AES_GCM",
               "initializationVector": body["initializationVector"]}
    assert_tsb_error(http.post("/v1/synchronousDecrypt", json={"decryptRequest": decrypt}), 620, 400)
    assert http.post("/v1/synchronousDecrypt", json={"decryptRequest": {**decrypt, "keyPassword": "pw-aes"}}) \
        .status_code == 200
    target = create(http, None, body={"algorithm": "AES", "keySize": 128})
    wrap = {"keyToBeWrapped": target, "wrapKeyName": aes, "wrapMethod": "AES_WRAP"}
    body = assert_tsb_error(http.post("/v1/wrap", json={"wrapKeyRequest": wrap}), 620, 400)
    assert "wrapKeyPassword" in body["message"]
    assert http.post("/v1/wrap", json={"wrapKeyRequest": {**wrap, "wrapKeyPassword": "pw-aes"}}).status_code == 200
    # a password for a key that has none is wrong as well
    assert_tsb_error(http.post("/v1/wrap", json={"wrapKeyRequest": {**wrap, "wrapKeyPassword": "pw-aes",
                                                                    "keyToBeWrappedPassword": "x"}}), 620, 400)
    hmac_key = create(http, "pw-hmac", body={"algorithm": "HMACSHA256"})
    assert_tsb_error(
        http.post("/v1/synchronousHmac", json={"hmacRequest": {"keyName": hmac_key, "payload": b64(b"x")}}),
            620, 400)
    request = {"signKeyName": create(http, "pw-cert"), "validity": 1, "signatureAlgorithm": "SHA256_WITH_ECDSA",
               "commonName": "pw"}
    assert_tsb_error(http.post("/v1/certificate/synchronous/selfsign", json=request), 620, 400)
    assert http.post("/v1/certificate/synchronous/selfsign", json={**request, "keyPassword": "pw-cert"}) \
        .status_code == 200
    # a password for a key that does not exist: the missing key is what matters
    assert_tsb_error(sign(http, "no-such-key", "x"), 650, 404)


def test_change_password(http: httpx.Client) -> None:
    label = create(http, "old")
    change = {"label": label, "password": "old", "newPassword": list("new")}
    assert_tsb_error(http.post("/v1/key/changePassword", json={**change, "password": "wrong"}), 620, 400)
    assert http.post("/v1/key/changePassword", json=change).status_code == 200
    assert_tsb_error(sign(http, label, "old"), 620, 400)
    assert sign(http, label, "new").status_code == 200
    # an empty new password removes it
    assert http.post("/v1/key/changePassword", json={"label": label, "password": "new", "newPassword": None}) \
        .status_code == 200
    assert sign(http, label, None).status_code == 200
    # a key without password gets one
    assert http.post("/v1/key/changePassword", json={"label": label, "newPassword": "fresh"}).status_code == 200
    assert_tsb_error(sign(http, label, None), 620, 400)


def test_change_password_needs_a_modifiable_key(http: httpx.Client) -> None:
    label = create(http, "fixed", {**OPEN, "modifiable": False})
    body = assert_tsb_error(http.post("/v1/key/changePassword", json={"label": label, "password": "fixed",
                                                                      "newPassword": "other"}), 701, 400)
    assert body["message"].startswith("KEY_FUNCTION_NOT_PERMITTED") and "modifiable" in body["message"]
    assert sign(http, label, "fixed").status_code == 200
    assert_tsb_error(
        http.post("/v1/key/changePassword", json={"label": "no-such-key", "newPassword": "x"}), 650, 404)


def test_failed_creation_leaves_no_password_behind(http: httpx.Client) -> None:
    label = unique("pw-fail")
    response = http.post("/v1/key", json={"label": label, "algorithm": "RSA", "keySize": 1000, "password": "x",
                                          "attributes": OPEN})
    assert_tsb_error(response, 603, 400)
    create_response = http.post("/v1/key", json={"label": label, **EC, "attributes": OPEN})
    assert create_response.status_code == 201
    assert sign(http, label, None).status_code == 200
    # and creating over an existing key does not change that key's password
    assert_tsb_error(
        http.post("/v1/key", json={"label": label, **EC, "password": "intruder", "attributes": OPEN}), 608, 400)
    assert sign(http, label, None).status_code == 200
    assert_tsb_error(
        http.post("/v1/key", json={"label": unique("pw"), **EC, "password": ["ab"], "attributes": OPEN}),
            600, 400)
