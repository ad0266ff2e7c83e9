"""``json.id`` on the PKCS#11 backend (a throwaway SoftHSM2 token): the ``id`` the caller gave at
creation, else ``null`` — never the CKA_ID hsmgate assigns itself. The TSB's Go client reads ``id``
as a pointer to a string and fails on any value it did not set, so every road that makes a key is
read back here: create (with and without ``id``), the Go client's wrap / unwrap matrix, and keys
made outside hsmgate by ``pkcs11-tool``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import LiveServer, soft_settings, unique
from tests.softhsm import SoftHsmToken

pytestmark = pytest.mark.pkcs11

WRAPPABLE = {"sign": True, "decrypt": False, "unwrap": False, "extractable": True, "sensitive": True,
             "destroyable": True}
SECRET = {"sign": False, "decrypt": True, "unwrap": False, "extractable": True, "sensitive": True,
          "destroyable": True}
AES_KEK = {"sign": False, "decrypt": True, "unwrap": True, "wrap": True, "extractable": False, "destroyable": True}
RSA_KEK = {"sign": False, "decrypt": True, "unwrap": True, "wrap": True, "extractable": False, "destroyable": True}


@pytest.fixture(scope="module")
def token(softhsm_factory: Callable[[str], SoftHsmToken]) -> SoftHsmToken:
    return softhsm_factory("e2e-key-id")


@pytest.fixture(scope="module")
def http(token: SoftHsmToken, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = soft_settings(tmp_path_factory.mktemp("pkcs11-key-id"), backend="pkcs11",
                             pkcs11_module=token.module_path, pkcs11_token_label=token.token_label,
                             pkcs11_pin=token.pin)
    with LiveServer(settings) as server, server.client() as client:
        yield client


def pkcs11_tool(token: SoftHsmToken, *args: str) -> str:
    env = {**os.environ, "SOFTHSM2_CONF": token.conf_path}
    result = subprocess.run(["pkcs11-tool", "--module", token.module_path, "--token-label", token.token_label,
                             "--login", "--pin", token.pin, *args],
                            capture_output=True, text=True, env=env, timeout=60, check=True)
    return result.stdout + result.stderr


def create(http: httpx.Client, label: str, body: dict[str, Any], attributes: dict[str, Any],
           **extra: Any) -> dict[str, Any]:
    response = http.post("/v1/key", json={"label": label, **body, "attributes": attributes, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def read(http: httpx.Client, label: str) -> dict[str, Any]:
    """The key as the Go client reads it after each step: ``POST /v1/key/attributes``."""
    response = http.post("/v1/key/attributes", json={"label": label})
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_id(key: dict[str, Any], expected: str | None) -> None:
    assert key["json"]["id"] == expected, key["json"]
    if expected is None:
        assert "<id>" not in key["xml"]
    else:
        assert f"\t<id>{expected}</id>\n" in key["xml"]


@pytest.mark.subprocess
def test_id_given_at_creation_is_returned_and_is_the_cka_id(http: httpx.Client, token: SoftHsmToken) -> None:
    label = unique("with-id")
    created = create(http, label, {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"}, WRAPPABLE,
                     id="app-key-0001")
    assert_id(created, "app-key-0001")
    assert_id(read(http, label), "app-key-0001")
    assert_id(http.get(f"/v1/key/{label}/attributes").json(), "app-key-0001")
    # the PKCS#11 provider finds the key under the id the caller chose ("for use with the PKCS#11 provider")
    objects = pkcs11_tool(token, "--list-objects", "--label", label)
    assert "ID:         " + b"app-key-0001".hex() in objects, objects


@pytest.mark.subprocess
@pytest.mark.parametrize("body", [
    {"algorithm": "RSA", "keySize": 2048}, {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"},
    {"algorithm": "AES", "keySize": 256},
], ids=["RSA", "EC", "AES"])
def test_no_id_given_reads_null_although_the_token_has_a_cka_id(http: httpx.Client, token: SoftHsmToken,
                                                                body: dict[str, Any]) -> None:
    label = unique("no-id")
    attributes = SECRET if body["algorithm"] == "AES" else WRAPPABLE
    assert_id(create(http, label, body, attributes), None)
    assert_id(read(http, label), None)
    assert "ID:" in pkcs11_tool(token, "--list-objects", "--label", label)  # hsmgate's own CKA_ID stays internal


@pytest.mark.subprocess
def test_keys_made_outside_hsmgate_read_null(http: httpx.Client, token: SoftHsmToken) -> None:
    label = unique("outside")
    pkcs11_tool(token, "--keypairgen", "--key-type", "EC:prime256v1", "--label", label, "--id", "c0ffee")
    assert_id(read(http, label), None)


#: The Go client's wrap matrix (reference §5.5: an AES-256 key wraps AES / EC / RSA keys with every
#: AES method, an RSA-2048 key wraps AES with RSA_WRAP_PAD / RSA_WRAP_OAEP), as far as the pkcs11
#: backend offers it on SoftHSM2 (docs/algorithms.md): AES-KW wraps what is a multiple of 8 bytes.
MATRIX = [
    ("AES", {"algorithm": "AES", "keySize": 256}, "AES_WRAP"),
    ("AES", {"algorithm": "AES", "keySize": 256}, "AES_WRAP_PAD"),
    ("AES", {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"}, "AES_WRAP_PAD_EC"),
    ("AES", {"algorithm": "RSA", "keySize": 2048}, "AES_WRAP_PAD_RSA"),
    ("RSA", {"algorithm": "AES", "keySize": 256}, "RSA_WRAP_PAD"),
    ("RSA", {"algorithm": "AES", "keySize": 256}, "RSA_WRAP_OAEP"),
]


@pytest.mark.parametrize(("kek_type", "target", "method"), MATRIX, ids=[m for _, _, m in MATRIX])
def test_wrap_unwrap_matrix_then_read(http: httpx.Client, kek_type: str, target: dict[str, Any],
                                      method: str) -> None:
    kek, original, copy = unique("kek"), unique("wrapped"), unique("unwrapped")
    kek_body = {"algorithm": "AES", "keySize": 256} if kek_type == "AES" else {"algorithm": "RSA", "keySize": 2048}
    assert_id(create(http, kek, kek_body, AES_KEK if kek_type == "AES" else RSA_KEK, id="kek-id"), "kek-id")
    secret = target["algorithm"] == "AES"
    created = create(http, original, target, SECRET if secret else WRAPPABLE, id="original-id")
    wrapped = http.post("/v1/wrap", json={"wrapKeyRequest": {
        "keyToBeWrapped": original, "wrapKeyName": kek, "wrapMethod": method}})
    assert wrapped.status_code == 200, wrapped.text
    unwrapped = http.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
        "wrappedKey": wrapped.json()["wrappedKey"], "label": copy, "unwrapKeyName": kek, "wrapMethod": method,
        "attributes": SECRET if secret else WRAPPABLE}})
    assert unwrapped.status_code == 201, unwrapped.text
    assert_id(unwrapped.json(), None)  # the caller gave no id for the new key
    key = read(http, copy)
    assert_id(key, None)
    assert key["json"]["algorithm"] == created["json"]["algorithm"]  # what the Go client checks
    if target["algorithm"] != "EC":  # an unwrapped EC private key carries no public point on SoftHSM2
        assert key["json"]["publicKey"] == created["json"]["publicKey"]
    assert_id(read(http, original), "original-id")
    assert_id(read(http, kek), "kek-id")
