"""POST /v1/synchronousHmac and HMAC verification (/v1/verifyHmac and the verifyHmacRequest
envelope on /v1/verify), checked with Python's ``hmac`` on the exported key."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from tests.helpers import assert_tsb_error, b64, unb64
from tests.domain.operations.helpers import create_key, export

HMAC_KEYS = {"HMACSHA1": hashlib.sha1, "HMACSHA224": hashlib.sha224, "HMACSHA256": hashlib.sha256,
             "HMACSHA384": hashlib.sha384, "HMACSHA512": hashlib.sha512}
SIGN = {"sign": True, "decrypt": False, "unwrap": False, "extractable": True, "sensitive": False}


def keyed_hash(http: httpx.Client, label: str, payload: bytes, **extra: object) -> httpx.Response:
    return http.post("/v1/synchronousHmac", json={"hmacRequest": {"keyName": label, "payload": b64(payload), **extra}})


@pytest.mark.parametrize("algorithm", list(HMAC_KEYS))
def test_hmac_matches_python_and_verifies(http: httpx.Client, algorithm: str) -> None:
    label = create_key(http, {"algorithm": algorithm}, SIGN)
    secret = export(http, label)["secretKey"]
    payload = b"the payload"
    response = keyed_hash(http, label, payload)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"keyedHash"}
    mac = unb64(response.json()["keyedHash"])
    assert mac == hmac.new(secret, payload, HMAC_KEYS[algorithm]).digest()

    good = {"keyName": label, "payload": b64(payload), "signature": b64(mac)}
    bad = {**good, "signature": b64(mac[:-1] + bytes([mac[-1] ^ 1]))}
    for path in ("/v1/verifyHmac", "/v1/verify"):
        assert http.post(path, json={"verifyHmacRequest": good}).json() == {"signatureValid": True}
        assert http.post(path, json={"verifyHmacRequest": bad}).json() == {"signatureValid": False}


def test_hmac_needs_an_hmac_key_with_sign(http: httpx.Client) -> None:
    aes = create_key(http, {"algorithm": "AES", "keySize": 256})
    body = assert_tsb_error(keyed_hash(http, aes, b"x"), 607, 400)
    assert "not an HMAC key" in body["message"]
    no_sign = create_key(http, {"algorithm": "HMACSHA256"}, {"sign": False, "decrypt": True, "unwrap": False})
    assert assert_tsb_error(
        keyed_hash(http, no_sign, b"x"), 701, 400)["message"].startswith("KEY_FUNCTION_NOT_PERMITTED")
    assert_tsb_error(keyed_hash(http, "no-such-hmac-key", b"x"), 650, 404)
    # /v1/verify with neither envelope
    body = assert_tsb_error(http.post("/v1/verify", json={"requestSignature": None}), 600, 400)
    assert "verifySignatureRequest" in body["message"]
