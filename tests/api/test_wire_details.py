"""Wire details over real HTTP: bodies with a trailing comma (the TSB Go client) are accepted on every
route, while other broken JSON stays 400 / 621; routes that answer nothing answer 200 with an empty
body (not ``null``); a key name holding a derivation path (``key/0/1``) on a key that is no
derivation master is 614 on every operation (never 650), and a label with ``/`` is 610 where a key is
created; a malformed path is 610."""

from __future__ import annotations

import base64
import importlib
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.routing import APIRoute

import hsmgate.api.routes as routes_package
from hsmgate.api.lenient_json import TsbRoute
from tests.helpers import LiveServer, assert_tsb_error, unique

PAYLOAD = base64.b64encode(b"Payload").decode()
JSON = {"Content-Type": "application/json"}


def ec_key(http: httpx.Client, label: str) -> None:
    response = http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                          "attributes": {"sign": True, "decrypt": False, "unwrap": False,
                                                         "destroyable": True, "modifiable": True}})
    assert response.status_code == 201, response.text


# -- lenient JSON ------------------------------------------------------------------------------


def test_every_route_parses_json_leniently() -> None:
    """Every route of every router in ``api/routes`` (all of ``/v1``) is a :class:`TsbRoute`."""
    package = Path(routes_package.__file__).parent
    routers = 0
    for module_file in sorted(package.glob("*.py")):
        module = importlib.import_module(f"hsmgate.api.routes.{module_file.stem}")
        router = getattr(module, "router", None)
        if router is None:
            continue
        routers += 1
        routes = [r for r in router.routes if isinstance(r, APIRoute)]
        assert routes and all(isinstance(r, TsbRoute) for r in routes), module.__name__
    assert routers >= 10


def test_import_with_a_trailing_comma_succeeds(http: httpx.Client) -> None:
    """The Go client's import body ends with ``,\\n }``."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    label = unique("lenient")
    body = (f'{{"label": "{label}", "algorithm": "EC", "publicKey": "{base64.b64encode(public).decode()}",\n'
            ' "attributes": {"sign": false, "decrypt": false, "unwrap": false, "destroyable": true,},\n }')
    response = http.post("/v1/key/import/plain", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["json"]["label"] == label


@pytest.mark.parametrize("path", ["/v1/key/import/plain", "/v1/synchronousSign", "/v1/sign", "/v1/approval"])
def test_other_broken_json_stays_621(http: httpx.Client, path: str) -> None:
    assert_tsb_error(http.post(path, content=b"{bad", headers=JSON), 621, 400)
    assert_tsb_error(http.post(path, content=b'{"a": 1,,}', headers=JSON), 621, 400)


# -- empty answers -----------------------------------------------------------------------------


def test_deleting_a_key_answers_an_empty_body(http: httpx.Client) -> None:
    by_path, by_body = unique("empty-delete"), unique("empty-delete")
    ec_key(http, by_path)
    ec_key(http, by_body)
    for response in (http.delete(f"/v1/key/{by_path}"), http.post("/v1/key/deleteKey", json={"label": by_body})):
        assert response.status_code == 200 and response.content == b"", response.content
        assert "content-type" not in response.headers
    assert by_path not in http.get("/v1/key").json() and by_body not in http.get("/v1/key").json()


def test_no_route_answers_a_json_null(soft_server: LiveServer) -> None:
    """Every 200 answer in the OpenAPI document has content or is documented as empty."""
    document = soft_server.app.openapi()
    empty = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"].get("200") or operation["responses"].get("201")
            assert ok is not None, (method, path)
            schema = ok.get("content", {}).get("application/json", {}).get("schema")
            assert schema != {}, f"{method.upper()} {path} documents an untyped JSON answer (a null?)"
            if "content" not in ok:
                empty.append(f"{method.upper()} {path}")
    assert {"DELETE /v1/key/{keyName}", "POST /v1/key/deleteKey", "POST /v1/approval", "DELETE /v1/request/{id}",
            "POST /v1/key/changePassword", "DELETE /v1/dataObject/{name}"} <= set(empty)


def test_change_password_and_data_object_delete_answer_empty(http: httpx.Client) -> None:
    label = unique("empty-password")
    ec_key(http, label)
    changed = http.post("/v1/key/changePassword", json={"label": label, "newPassword": "a-new-password-1"})
    assert changed.status_code == 200 and changed.content == b"", changed.text
    name = unique("empty-object")
    assert http.post("/v1/dataObject", json={"name": name, "value": PAYLOAD}).status_code == 201
    deleted = http.delete(f"/v1/dataObject/{name}")
    assert deleted.status_code == 200 and deleted.content == b""


# -- derivation paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/synchronousSign", {"signRequest": {"payload": PAYLOAD, "signKeyName": "{k}/0/1",
                                             "signatureAlgorithm": "SHA256_WITH_ECDSA"}}),
    ("/v1/synchronousSign", {"signRequest": {"payload": PAYLOAD, "signKeyName": "{k}/0/1", "keyPassword": "pw",
                                             "signatureAlgorithm": "SHA256_WITH_ECDSA"}}),
    ("/v1/verify", {"verifySignatureRequest": {"payload": PAYLOAD, "signKeyName": "{k}/0/1",
                                               "signature": PAYLOAD, "signatureAlgorithm": "SHA256_WITH_ECDSA"}}),
    ("/v1/sign", {"signRequest": {"payload": PAYLOAD, "signKeyName": "{k}/0/1",
                                  "signatureAlgorithm": "SHA256_WITH_ECDSA"}}),
    ("/v1/encrypt", {"encryptRequest": {"payload": PAYLOAD, "encryptKeyName": "{k}/0", "cipherAlgorithm": "AES_GCM"}}),
    ("/v1/synchronousHmac", {"hmacRequest": {"keyName": "{k}/0", "payload": PAYLOAD}}),
    ("/v1/key/attributes", {"label": "{k}/0"}),
    ("/v1/key/export/plain", {"label": "{k}/0"}),
    ("/v1/key/changePassword", {"label": "{k}/0", "newPassword": "a-new-password-1"}),
    ("/v1/certificate/synchronous/selfsign", {"signKeyName": "{k}/0", "commonName": "x",
                                              "signatureAlgorithm": "SHA256_WITH_ECDSA", "validity": 1}),
    ("/v1/key/address", {"label": "{k}/0"}),
    ("/v1/key/deleteKey", {"label": "{k}/0"}),
])
def test_a_derivation_path_on_a_plain_key_is_614_everywhere(http: httpx.Client, path: str,
                                                            body: dict[str, object]) -> None:
    label = unique("derived")
    ec_key(http, label)  # the key exists: only the path after it is refused

    def fill(value: object) -> object:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value.replace("{k}", label) if isinstance(value, str) else value

    error = assert_tsb_error(http.post(path, json=fill(body)), 614, 400)
    assert "is not a derivation master" in str(error["message"])


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/key", {"label": "{k}/0", "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                 "attributes": {"sign": True, "decrypt": False, "unwrap": False}}),
    ("/v1/synchronousSign", {"signRequest": {"payload": PAYLOAD, "signKeyName": "{k}/00",
                                             "signatureAlgorithm": "SHA256_WITH_ECDSA"}}),
    ("/v1/synchronousSign", {"signRequest": {"payload": PAYLOAD, "signKeyName": "{k}/0//1",
                                             "signatureAlgorithm": "SHA256_WITH_ECDSA"}}),
    ("/v1/synchronousSign", {"signRequest": {"payload": PAYLOAD, "signKeyName": "{k}/2147483648",
                                             "signatureAlgorithm": "SHA256_WITH_ECDSA"}}),
    ("/v1/verify", {"verifySignatureRequest": {"payload": PAYLOAD, "signKeyName": "{k}/m/0",
                                               "signature": PAYLOAD, "signatureAlgorithm": "SHA256_WITH_ECDSA"}}),
])
def test_a_slash_in_a_new_label_or_a_malformed_path_is_610(http: httpx.Client, path: str,
                                                          body: dict[str, object]) -> None:
    label = unique("derived")
    ec_key(http, label)

    def fill(value: object) -> object:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value.replace("{k}", label) if isinstance(value, str) else value

    assert_tsb_error(http.post(path, json=fill(body)), 610, 400)
