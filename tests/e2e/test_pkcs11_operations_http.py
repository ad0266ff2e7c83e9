"""HTTP smoke test of the optional operations on the PKCS#11 backend (a throwaway SoftHSM2 token): encrypt /
decrypt, wrap / unwrap, HMAC, and a refusal that is a TSB error body, not a 500. Results are checked with
``cryptography`` / ``hmac`` on exported test keys."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.helpers import LiveServer, assert_tsb_error, b64, soft_settings, unb64
from tests.domain.operations.helpers import OPEN, create_key, export
from tests.softhsm import SoftHsmToken

pytest_plugins = ["tests.softhsm_fixtures"]
pytestmark = pytest.mark.pkcs11


@pytest.fixture(scope="module")
def http(softhsm_factory: Callable[[str], SoftHsmToken],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    token = softhsm_factory("e2e-pkcs11-ops")
    settings = soft_settings(tmp_path_factory.mktemp("pkcs11-ops"), backend="pkcs11",
                             pkcs11_module=token.module_path, pkcs11_token_label=token.token_label,
                             pkcs11_pin=token.pin)
    with LiveServer(settings) as server, server.client() as client:
        yield client


def test_aes_gcm_round_trip(http: httpx.Client) -> None:
    label = create_key(http, {"algorithm": "AES", "keySize": 256})
    secret = export(http, label)["secretKey"]
    assert secret is not None
    response = http.post("/v1/encrypt", json={"encryptRequest": {
        "payload": b64(b"over http"), "encryptKeyName": label, "cipherAlgorithm": "AES_GCM",
        "additionalAuthenticationData": b64(b"aad")}})
    assert response.status_code == 200, response.text
    body = response.json()
    iv, encrypted = unb64(body["initializationVector"]), unb64(body["encryptedPayload"])
    assert len(iv) == 12 and AESGCM(secret).decrypt(iv, encrypted, b"aad") == b"over http"
    back = http.post("/v1/synchronousDecrypt", json={"decryptRequest": {
        "encryptedPayload": body["encryptedPayload"], "decryptKeyName": label, "cipherAlgorithm": "AES_GCM",
        "initializationVector": body["initializationVector"], "additionalAuthenticationData": b64(b"aad")}})
    assert back.status_code == 200, back.text
    assert unb64(back.json()["payload"]) == b"over http"
    tampered = encrypted[:-1] + bytes([encrypted[-1] ^ 1])
    assert_tsb_error(http.post("/v1/synchronousDecrypt", json={"decryptRequest": {
               "encryptedPayload": b64(tampered), "decryptKeyName": label, "cipherAlgorithm": "AES_GCM",
               "initializationVector": body["initializationVector"], "additionalAuthenticationData": b64(b"aad")}}),
               410, 400)


def test_rsa_oaep_sha1_round_trip_and_sha256_refused(http: httpx.Client) -> None:
    label = create_key(http, {"algorithm": "RSA", "keySize": 2048})
    private = serialization.load_der_private_key(export(http, label)["privateKey"] or b"", None)
    assert isinstance(private, rsa.RSAPrivateKey)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    response = http.post("/v1/encrypt", json={"encryptRequest": {
        "payload": b64(b"rsa"), "encryptKeyName": label, "cipherAlgorithm": "RSA_PADDING_OAEP_WITH_SHA1"}})
    assert response.status_code == 200, response.text
    assert private.decrypt(unb64(response.json()["encryptedPayload"]), oaep) == b"rsa"
    back = http.post("/v1/synchronousDecrypt", json={"decryptRequest": {
        "encryptedPayload": b64(private.public_key().encrypt(b"back", oaep)), "decryptKeyName": label,
        "cipherAlgorithm": "RSA_PADDING_OAEP_WITH_SHA1"}})
    assert back.status_code == 200, back.text
    assert unb64(back.json()["payload"]) == b"back"
    body = assert_tsb_error(http.post("/v1/encrypt", json={"encryptRequest": {
               "payload": b64(b"rsa"), "encryptKeyName": label, "cipherAlgorithm": "RSA_PADDING_OAEP_WITH_SHA256"}}),
               629, 400)
    assert "pkcs11" in body["message"]


def test_aes_wrap_pad_and_unwrap(http: httpx.Client) -> None:
    kek = create_key(http, {"algorithm": "AES", "keySize": 256}, {**OPEN, "wrap": True, "unwrap": True})
    target = create_key(http, {"algorithm": "AES", "keySize": 128})
    kek_bytes, secret = export(http, kek)["secretKey"] or b"", export(http, target)["secretKey"]
    response = http.post("/v1/wrap", json={"wrapKeyRequest": {
        "keyToBeWrapped": target, "wrapKeyName": kek, "wrapMethod": "AES_WRAP_PAD"}})
    assert response.status_code == 200, response.text
    blob = unb64(response.json()["wrappedKey"])
    assert keywrap.aes_key_unwrap_with_padding(kek_bytes, blob) == secret
    label = f"{target}-copy"
    back = http.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
        "wrappedKey": b64(blob), "label": label, "unwrapKeyName": kek, "wrapMethod": "AES_WRAP_PAD",
        "attributes": OPEN}})
    assert back.status_code == 201, back.text
    assert back.json()["json"]["keySize"] == 128
    assert export(http, label)["secretKey"] == secret


def test_hmac(http: httpx.Client) -> None:
    label = create_key(http, {"algorithm": "HMACSHA256"},
                       {"sign": True, "decrypt": False, "unwrap": False, "extractable": True, "sensitive": False})
    secret = export(http, label)["secretKey"] or b""
    response = http.post("/v1/synchronousHmac", json={"hmacRequest": {"keyName": label, "payload": b64(b"p")}})
    assert response.status_code == 200, response.text
    assert unb64(response.json()["keyedHash"]) == hmac.new(secret, b"p", "sha256").digest()


def test_refusals_are_tsb_errors(http: httpx.Client) -> None:
    aes = create_key(http, {"algorithm": "AES", "keySize": 256})
    # ChaCha20 is not on SoftHSM2: no key can be made, and a ChaCha20 cipher on an AES key is refused
    response = http.post("/v1/key", json={"label": "chacha", "algorithm": "ChaCha20", "keySize": 256,
                                          "attributes": OPEN})
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"errorCode", "reason", "message"}
    response = http.post("/v1/encrypt", json={"encryptRequest": {
        "payload": b64(b"x" * 16), "encryptKeyName": aes, "cipherAlgorithm": "CHACHA20"}})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["errorCode"] in (607, 611, 613, 629)
