"""POST /v1/wrap and /v1/synchronousUnwrap, checked with ``cryptography`` on exported keys.

Documented blob format: a secret key is wrapped as its raw bytes, a private key as its PKCS#8 DER
(zero-padded to a multiple of 8 bytes for RFC 3394). AES key wrap is deterministic, so the blob
must equal what ``cryptography`` computes; RSA wraps are opened with the exported private key.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.helpers import assert_tsb_error, b64, unb64
from tests.domain.operations.helpers import CLOSED, OPEN, create_key, export

PRIVATE_BODIES = {
    "RSA": {"algorithm": "RSA", "keySize": 2048},
    "EC": {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"},
    "ED": {"algorithm": "ED", "curveOid": "1.3.101.112"},
    "DSA": {"algorithm": "DSA", "keySize": 2048},
}


@pytest.fixture(scope="module")
def kek(http: httpx.Client) -> tuple[str, bytes]:
    label = create_key(http, {"algorithm": "AES", "keySize": 256}, prefix="kek")
    return label, export(http, label)["secretKey"] or b""


@pytest.fixture(scope="module")
def rsa_kek(http: httpx.Client) -> tuple[str, Any]:
    label = create_key(http, {"algorithm": "RSA", "keySize": 2048}, prefix="rsa-kek")
    private = serialization.load_der_private_key(export(http, label)["privateKey"] or b"", None)
    return label, private


@pytest.fixture(scope="module")
def targets(http: httpx.Client) -> dict[str, tuple[str, dict[str, bytes | None]]]:
    """Extractable keys to wrap: AES-128/192/256, ChaCha20, HMAC-SHA1 and one private key per family."""
    bodies = {"AES-128": {"algorithm": "AES", "keySize": 128}, "AES-192": {"algorithm": "AES", "keySize": 192},
              "AES-256": {"algorithm": "AES", "keySize": 256}, "ChaCha20": {"algorithm": "ChaCha20"},
              "HMACSHA1": {"algorithm": "HMACSHA1"}, **PRIVATE_BODIES}
    out = {}
    for name, body in bodies.items():
        label = create_key(http, body, prefix=f"target-{name}")
        out[name] = (label, export(http, label))
    return out


def wrap(http: httpx.Client, target: str, wrapping: str, method: str, **extra: Any) -> httpx.Response:
    return http.post("/v1/wrap", json={"wrapKeyRequest": {
        "keyToBeWrapped": target, "wrapKeyName": wrapping, "wrapMethod": method, **extra}})


def unwrap(http: httpx.Client, blob: bytes, label: str, unwrapping: str, method: str,
           attributes: dict[str, Any] | None = None, **extra: Any) -> httpx.Response:
    return http.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
        "wrappedKey": b64(blob), "label": label, "unwrapKeyName": unwrapping, "wrapMethod": method,
        "attributes": attributes or OPEN, **extra}})


def wrapped(response: httpx.Response) -> bytes:
    assert response.status_code == 200, response.text
    return unb64(response.json()["wrappedKey"])


@pytest.mark.parametrize("name", ["AES-128", "AES-192", "AES-256", "ChaCha20"])
def test_aes_key_wrap_of_secret_keys_equals_rfc3394_and_rfc5649(http: httpx.Client, kek: tuple[str, bytes],
                                                                targets: dict[str, Any], name: str) -> None:
    kek_label, kek_bytes = kek
    label, material = targets[name]
    secret = material["secretKey"]
    assert wrapped(wrap(http, label, kek_label, "AES_WRAP")) == keywrap.aes_key_wrap(kek_bytes, secret)
    assert wrapped(wrap(http, label, kek_label, "AES_WRAP_PAD")) == keywrap.aes_key_wrap_with_padding(kek_bytes, secret)


def test_rfc3394_refuses_a_key_that_is_not_a_multiple_of_8_bytes(http: httpx.Client, kek: tuple[str, bytes],
                                                                   targets: dict[str, Any]) -> None:
    kek_label, kek_bytes = kek
    label, material = targets["HMACSHA1"]  # 20 bytes
    body = assert_tsb_error(wrap(http, label, kek_label, "AES_WRAP"), 612, 400)
    assert body["message"] == ("AES key wrap (RFC 3394) needs a key of a multiple of 8 bytes, at least 16; "
                               "this one has 20 bytes: use a _PAD wrap method")
    blob = wrapped(wrap(http, label, kek_label, "AES_WRAP_PAD"))
    assert keywrap.aes_key_unwrap_with_padding(kek_bytes, blob) == material["secretKey"]


@pytest.mark.parametrize("family", list(PRIVATE_BODIES))
def test_private_keys_travel_as_pkcs8(http: httpx.Client, kek: tuple[str, bytes], targets: dict[str, Any],
                                      family: str) -> None:
    kek_label, kek_bytes = kek
    label, material = targets[family]
    pkcs8 = material["privateKey"]
    blob = wrapped(wrap(http, label, kek_label, f"AES_WRAP_PAD_{family}"))
    assert keywrap.aes_key_unwrap_with_padding(kek_bytes, blob) == pkcs8
    blob = wrapped(wrap(http, label, kek_label, f"AES_WRAP_{family}"))
    inner = keywrap.aes_key_unwrap(kek_bytes, blob)
    assert inner.rstrip(b"\x00") == pkcs8.rstrip(b"\x00") and inner[:len(pkcs8)] == pkcs8
    assert set(inner[len(pkcs8):]) <= {0} and len(inner) % 8 == 0

    # unwrapped: same key (same public key), the original algorithm, the requested label and attributes
    new_label = f"{label}-back"
    response = unwrap(http, blob, new_label, kek_label, f"AES_WRAP_{family}",
                      {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True})
    assert response.status_code == 201, response.text
    key = response.json()
    assert key["json"]["label"] == new_label
    assert key["json"]["algorithm"] == family
    original = http.post("/v1/key/attributes", json={"label": label}).json()["json"]
    assert key["json"]["publicKey"] == original["publicKey"]
    assert key["json"]["curveOid"] == original["curveOid"]
    attrs = key["json"]["attributes"]
    assert (attrs["sign"], attrs["extractable"], attrs["sensitive"]) == (True, False, True)
    assert attrs["alwaysSensitive"] is False and attrs["neverExtractable"] is False
    assert 'creation="imported"' in key["xml"]


def test_suffix_must_name_the_wrapped_key_type(http: httpx.Client, kek: tuple[str, bytes],
                                               targets: dict[str, Any]) -> None:
    kek_label, _ = kek
    body = assert_tsb_error(wrap(http, targets["EC"][0], kek_label, "AES_WRAP_PAD_RSA"), 613, 400)
    assert "EC" in body["message"]
    body = assert_tsb_error(wrap(http, targets["EC"][0], kek_label, "AES_WRAP_PAD"), 613, 400)
    assert "AES_WRAP_PAD_EC" in body["message"]
    assert_tsb_error(wrap(http, targets["AES-256"][0], kek_label, "AES_WRAP_EC"), 613, 400)
    # an EC blob unwrapped as RSA: the blob does not hold an RSA key
    blob = wrapped(wrap(http, targets["EC"][0], kek_label, "AES_WRAP_PAD_EC"))
    assert_tsb_error(
        unwrap(http, blob, f"{targets['EC'][0]}-as-rsa", kek_label, "AES_WRAP_PAD_RSA"), 410, 400)


@pytest.mark.parametrize("method", ["RSA_WRAP_OAEP", "RSA_WRAP_PAD"])
def test_rsa_wrap_of_a_secret_key(http: httpx.Client, rsa_kek: tuple[str, Any], targets: dict[str, Any],
                                  method: str) -> None:
    kek_label, private = rsa_kek
    label, material = targets["AES-256"]
    blob = wrapped(wrap(http, label, kek_label, method))
    scheme = (padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None) if method == "RSA_WRAP_OAEP"
              else padding.PKCS1v15())
    assert private.decrypt(blob, scheme) == material["secretKey"]
    response = unwrap(http, blob, f"{label}-{method}", kek_label, method)
    assert response.status_code == 201, response.text
    assert response.json()["json"]["algorithm"] == "AES" and response.json()["json"]["keySize"] == 256
    assert export(http, f"{label}-{method}")["secretKey"] == material["secretKey"]
    # RSA methods carry secret keys only
    assert_tsb_error(wrap(http, targets["EC"][0], kek_label, method), 613, 400)


def test_unwrapped_secret_key_keeps_its_algorithm(http: httpx.Client, kek: tuple[str, bytes],
                                                  rsa_kek: tuple[str, Any], targets: dict[str, Any]) -> None:
    """Raw key bytes do not say which algorithm they were: hsmgate recorded it when it wrapped."""
    label, material = targets["ChaCha20"]
    for wrapping, method in ((kek[0], "AES_WRAP"), (rsa_kek[0], "RSA_WRAP_OAEP")):
        blob = wrapped(wrap(http, label, wrapping, method))
        response = unwrap(http, blob, f"{label}-{method}", wrapping, method)
        assert response.status_code == 201, response.text
        assert response.json()["json"]["algorithm"] == "ChaCha20"
        assert export(http, f"{label}-{method}")["secretKey"] == material["secretKey"]
    # a blob made elsewhere: the algorithm comes from the request, AES by default
    foreign = keywrap.aes_key_wrap(kek[1], bytes(range(32)))
    response = unwrap(http, foreign, f"{label}-foreign-cc", kek[0], "AES_WRAP", algorithm="Camellia")
    assert response.status_code == 201 and response.json()["json"]["algorithm"] == "Camellia"
    response = unwrap(http, foreign, f"{label}-foreign-aes", kek[0], "AES_WRAP")
    assert response.status_code == 201 and response.json()["json"]["algorithm"] == "AES"


def test_wrapping_honours_extractable_and_the_wrap_attributes(http: httpx.Client, kek: tuple[str, bytes]) -> None:
    kek_label, _ = kek
    locked = create_key(http, {"algorithm": "AES", "keySize": 256}, CLOSED)
    body = assert_tsb_error(wrap(http, locked, kek_label, "AES_WRAP"), 701, 400)
    assert body["message"].startswith("KEY_FUNCTION_NOT_PERMITTED") and "extractable" in body["message"]
    target = create_key(http, {"algorithm": "AES", "keySize": 128})
    no_wrap = create_key(http, {"algorithm": "AES", "keySize": 256}, {"sign": False, "decrypt": True, "unwrap": False})
    assert_tsb_error(wrap(http, target, no_wrap, "AES_WRAP"), 701, 400)
    blob = wrapped(wrap(http, target, kek_label, "AES_WRAP"))
    assert_tsb_error(unwrap(http, blob, f"{target}-x", no_wrap, "AES_WRAP"), 701, 400)
    # a damaged blob, a wrong key: 410
    assert_tsb_error(
        unwrap(http, blob[:-1] + bytes([blob[-1] ^ 1]), f"{target}-y", kek_label, "AES_WRAP"), 410, 400)
    other = create_key(http, {"algorithm": "AES", "keySize": 256})
    assert_tsb_error(unwrap(http, blob, f"{target}-z", other, "AES_WRAP"), 410, 400)
    # the new label must be free; the wrapping key must fit the method
    assert_tsb_error(unwrap(http, blob, target, kek_label, "AES_WRAP"), 608, 400)
    assert_tsb_error(wrap(http, target, kek_label, "RSA_WRAP_OAEP"), 607, 400)
    assert_tsb_error(unwrap(http, blob, f"{target}-w", kek_label, "AES_WRAP",
                            {"sign": False, "decrypt": False, "unwrap": False}), 606, 400)


def test_wrapped_key_is_base64(http: httpx.Client, kek: tuple[str, bytes], targets: dict[str, Any]) -> None:
    text = wrap(http, targets["AES-128"][0], kek[0], "AES_WRAP").json()["wrappedKey"]
    assert base64.b64encode(base64.b64decode(text)).decode() == text
