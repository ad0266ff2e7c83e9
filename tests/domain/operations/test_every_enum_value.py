"""Every ``cipherAlgorithm`` of §5.4 and every ``wrapMethod`` of §5.5 (plus the Go client's ML-KEM
values) either works on the soft backend — a full round trip — or is refused with the documented
TSB error. The lists are the reference's, written out here, and must equal the wire enums of the
OpenAPI document."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from tests.helpers import assert_tsb_error, b64, unb64
from tests.domain.operations.helpers import OPEN, create_key

#: §5.4 — all work on the soft backend.
CIPHER_ALGORITHMS = [
    "RSA_PADDING_OAEP_WITH_SHA512", "RSA", "RSA_PADDING_OAEP_WITH_SHA224", "RSA_PADDING_OAEP_WITH_SHA256",
    "RSA_PADDING_OAEP_WITH_SHA1", "RSA_PADDING_OAEP", "RSA_PADDING_OAEP_WITH_SHA384", "RSA_PADDING_PKCS",
    "RSA_NO_PADDING", "AES_GCM", "AES_CTR", "AES_ECB", "AES_CBC_NO_PADDING", "AES", "CHACHA20", "CHACHA20_AEAD",
    "CAMELLIA", "CAMELLIA_CBC_NO_PADDING", "CAMELLIA_ECB", "TDEA_CBC", "TDEA_ECB", "TDEA_CBC_NO_PADDING",
]
#: §5.5 (+ ML-KEM from the Go client) → None when it works, else the documented (status, errorCode).
#: None: the method round-trips; otherwise the refusal's (errorCode, HTTP status).
WRAP_METHODS: dict[str, tuple[int, int] | None] = {
    "AES_WRAP": None, "AES_WRAP_DSA": None, "AES_WRAP_EC": None, "AES_WRAP_ED": None, "AES_WRAP_RSA": None,
    "AES_WRAP_BLS": None,
    "AES_WRAP_PAD": None, "AES_WRAP_PAD_DSA": None, "AES_WRAP_PAD_EC": None, "AES_WRAP_PAD_ED": None,
    "AES_WRAP_PAD_RSA": None, "AES_WRAP_PAD_BLS": None,
    "RSA_WRAP_PAD": None, "RSA_WRAP_OAEP": None,
    "ML-KEM-512": None, "ML-KEM-768": None, "ML-KEM-1024": None,
}

CIPHER_KEYS = {"RSA": {"algorithm": "RSA", "keySize": 2048}, "AES": {"algorithm": "AES", "keySize": 256},
               "CHACHA20": {"algorithm": "ChaCha20"}, "CAMELLIA": {"algorithm": "Camellia", "keySize": 256},
               "TDEA": {"algorithm": "TDEA"}}
TARGETS = {"": {"algorithm": "AES", "keySize": 192}, "DSA": {"algorithm": "DSA", "keySize": 1024},
           "EC": {"algorithm": "EC", "curveOid": "1.3.132.0.10"}, "ED": {"algorithm": "ED", "curveOid": "1.3.101.113"},
           "RSA": {"algorithm": "RSA", "keySize": 1024}, "BLS": {"algorithm": "BLS"}}


@pytest.fixture(scope="module")
def keys(http: httpx.Client) -> dict[str, str]:
    out = {family: create_key(http, body, prefix=f"enum-{family}") for family, body in CIPHER_KEYS.items()}
    out.update({f"target-{suffix}": create_key(http, body, prefix="enum-target") for suffix, body in TARGETS.items()})
    for kem in ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024"):
        out[kem] = create_key(http, {"algorithm": kem}, prefix="enum-kem")
    return out


def test_wire_enums_are_the_reference_lists(http: httpx.Client) -> None:
    schemas = http.get("/v3/api-docs").json()["components"]["schemas"]
    assert sorted(schemas["CipherAlgorithm"]["enum"]) == sorted(CIPHER_ALGORITHMS)
    assert sorted(schemas["WrapMethod"]["enum"]) == sorted(WRAP_METHODS)


@pytest.mark.parametrize("algorithm", CIPHER_ALGORITHMS)
def test_every_cipher_algorithm_round_trips(http: httpx.Client, keys: dict[str, str], algorithm: str) -> None:
    label = keys[next(f for f in CIPHER_KEYS if algorithm.startswith(f))]
    payload = os.urandom(32)
    request: dict[str, Any] = {"payload": b64(payload), "encryptKeyName": label, "cipherAlgorithm": algorithm}
    response = http.post("/v1/encrypt", json={"encryptRequest": request})
    assert response.status_code == 200, response.text
    body = response.json()
    decrypt = {"encryptedPayload": body["encryptedPayload"], "decryptKeyName": label, "cipherAlgorithm": algorithm,
               "initializationVector": body["initializationVector"]}
    response = http.post("/v1/synchronousDecrypt", json={"decryptRequest": decrypt})
    assert response.status_code == 200, response.text
    assert unb64(response.json()["payload"]).endswith(payload)  # RSA_NO_PADDING: the whole block


@pytest.mark.parametrize("method", list(WRAP_METHODS))
def test_every_wrap_method_round_trips_or_is_refused(http: httpx.Client, keys: dict[str, str], method: str) -> None:
    if method.startswith("ML-KEM"):
        wrapping, suffix = keys[method], ""
    else:
        wrapping = keys["RSA" if method.startswith("RSA") else "AES"]
        suffix = method.removeprefix("AES_WRAP_PAD").removeprefix("AES_WRAP").removeprefix("_")
        suffix = "" if method.startswith("RSA") else suffix
    target = keys[f"target-{suffix}"]
    response = http.post("/v1/wrap", json={"wrapKeyRequest": {
        "keyToBeWrapped": target, "wrapKeyName": wrapping, "wrapMethod": method}})
    expected = WRAP_METHODS[method]
    if expected is not None:
        body = assert_tsb_error(response, *expected)
        assert method in body["message"]
        return
    assert response.status_code == 200, response.text
    new_label = f"{target}-{method}"
    response = http.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
        "wrappedKey": response.json()["wrappedKey"], "label": new_label, "unwrapKeyName": wrapping,
        "wrapMethod": method, "attributes": OPEN}})
    assert response.status_code == 201, response.text
    original = http.post("/v1/key/attributes", json={"label": target}).json()["json"]
    unwrapped = response.json()["json"]
    for field in ("algorithm", "keySize", "curveOid", "publicKey"):
        assert unwrapped[field] == original[field], field
