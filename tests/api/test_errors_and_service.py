"""The error model on malformed requests, and the service-information endpoints."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import TSB_ERROR_KEYS, LiveServer, assert_tsb_error, soft_settings, unique

JSON = {"Content-Type": "application/json"}
ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "destroyable": True}


@pytest.fixture(scope="module")
def rsa_label(http: httpx.Client) -> str:
    label = unique("errors-rsa")
    response = http.post(
        "/v1/key", json={"label": label, "algorithm": "RSA", "keySize": 2048, "attributes": ATTRIBUTES}
    )
    assert response.status_code == 201, response.text
    return label


# ---------------------------------------------------------------------------------------------
# malformed requests


@pytest.mark.parametrize("path", ["/v1/key", "/v1/synchronousSign", "/v1/verify", "/v1/key/attributes"])
def test_malformed_json_is_621(http: httpx.Client, path: str) -> None:
    body = assert_tsb_error(http.post(path, content=b"{bad", headers=JSON), 621, 400)
    assert body["reason"] == "res.error.invalid.json"


@pytest.mark.parametrize(
    "content", [b"[]", b"", b"null", b"42", b'"text"'], ids=["array", "empty", "null", "number", "string"]
)
@pytest.mark.parametrize("path", ["/v1/key", "/v1/synchronousSign"])
def test_body_that_is_not_an_object_is_600(http: httpx.Client, path: str, content: bytes) -> None:
    body = assert_tsb_error(http.post(path, content=content, headers=JSON), 600, 400)
    assert body["reason"] == "res.error.input.validation.failed"


def test_bad_base64_payload_names_the_field(http: httpx.Client, rsa_label: str) -> None:
    for payload in ("UGF5bG9hZA=", "not base64!", "UGF5bG9hZA", "UGF5-G9hZA=="):
        response = http.post(
            "/v1/synchronousSign",
            json={
                "signRequest": {
                    "payload": payload,
                    "signKeyName": rsa_label,
                    "signatureAlgorithm": "SHA256_WITH_RSA",
                }
            },
        )
        body = assert_tsb_error(response, 600, 400)
        assert "'signRequest.payload'" in str(body["message"]), body


def test_missing_envelope_field_names_it(http: httpx.Client) -> None:
    body = assert_tsb_error(http.post("/v1/synchronousSign", json={"payload": "AA=="}), 600, 400)
    assert "signRequest" in str(body["message"])
    body = assert_tsb_error(
        http.post("/v1/synchronousSign", json={"signRequest": {"payload": "AA==", "signKeyName": "x"}}),
        600,
        400,
    )
    assert "'signRequest.signatureAlgorithm'" in str(body["message"])


def test_unknown_route_is_404_with_tsb_body(http: httpx.Client) -> None:
    assert_tsb_error(http.get("/v1/nothing-here"), 102, 404)
    assert_tsb_error(http.post("/v1/synchronousSignature", json={}), 102, 404)


def test_wrong_method_is_405_with_tsb_body(http: httpx.Client) -> None:
    assert_tsb_error(http.put("/v1/key", json={}), 102, 405)
    assert_tsb_error(http.get("/v1/synchronousSign"), 102, 405)


REQUESTS: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = [
    ("malformed-json", lambda c: c.post("/v1/key", content=b"{bad", headers=JSON)),
    ("array-body", lambda c: c.post("/v1/key", content=b"[]", headers=JSON)),
    ("empty-body", lambda c: c.post("/v1/key", content=b"", headers=JSON)),
    ("unknown-route", lambda c: c.get("/v1/unknown")),
    ("wrong-method", lambda c: c.put("/v1/key")),
    ("unknown-key", lambda c: c.get(f"/v1/key/{unique('none')}/attributes")),
    (
        "unknown-enum",
        lambda c: c.post(
            "/v1/synchronousSign",
            json={"signRequest": {"payload": "AA==", "signKeyName": "x", "signatureAlgorithm": "FOO"}},
        ),
    ),
    (
        "bad-key-size",
        lambda c: c.post(
            "/v1/key", json={"label": unique("e"), "algorithm": "RSA", "keySize": 7, "attributes": ATTRIBUTES}
        ),
    ),
    (
        "wrong-type",
        lambda c: c.post(
            "/v1/key",
            json={"label": unique("e"), "algorithm": "RSA", "keySize": "big", "attributes": ATTRIBUTES},
        ),
    ),
    ("random-zero", lambda c: c.get("/v1/generateRandom/0")),
    ("random-not-a-number", lambda c: c.get("/v1/generateRandom/many")),
    ("delete-attestation-key", lambda c: c.delete("/v1/key/attestation-key")),
]


@pytest.mark.parametrize("call", [pytest.param(fn, id=name) for name, fn in REQUESTS])
def test_every_error_body_has_exactly_the_tsb_keys(
    http: httpx.Client, call: Callable[[httpx.Client], httpx.Response]
) -> None:
    response = call(http)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert set(body) == TSB_ERROR_KEYS, body
    assert (
        isinstance(body["errorCode"], int)
        and isinstance(body["reason"], str)
        and isinstance(body["message"], str)
    )


def test_password_array_form_parses_and_protects_the_key(http: httpx.Client) -> None:
    """Key passwords (tests/domain/operations/test_passwords.py has the full matrix): the char[]
    form is accepted and the key then needs its password; a malformed char[] is a validation error."""
    label = unique("pw")
    response = http.post(
        "/v1/key",
        json={
            "label": label,
            "password": ["a", "b"],
            "algorithm": "RSA",
            "keySize": 2048,
            "attributes": ATTRIBUTES,
        },
    )
    assert response.status_code == 201, response.text
    assert_tsb_error(http.post("/v1/key/attributes", json={"label": label}), 620, 400)
    assert http.post("/v1/key/attributes", json={"label": label, "password": "ab"}).status_code == 200
    body = assert_tsb_error(
        http.post(
            "/v1/key",
            json={
                "label": unique("pw"),
                "password": ["ab"],
                "algorithm": "RSA",
                "keySize": 2048,
                "attributes": ATTRIBUTES,
            },
        ),
        600,
        400,
    )
    assert "password" in str(body["message"])


def test_unexpected_error_is_a_tsb_500_and_keeps_the_connection(tmp_path: Path) -> None:
    """A bug surfaces as the generic TSB 500 body without internals, and the keep-alive
    connection stays usable for the client's next request."""
    server = LiveServer(soft_settings(tmp_path))

    def boom() -> None:
        raise RuntimeError("secret internal detail")

    server.app.add_api_route("/v1/test-only-boom", boom, methods=["GET"], include_in_schema=False)
    with server, server.client() as http:
        for _ in range(10):
            body = assert_tsb_error(http.get("/v1/test-only-boom"), 1, 500)
            assert body["reason"] == "res.error.technical"
            assert "secret internal detail" not in str(body["message"])
            assert http.get("/health").status_code == 200  # same pooled connection, not reset


# ---------------------------------------------------------------------------------------------
# service information


def test_version_info(http: httpx.Client) -> None:
    response = http.get("/v1/versionInfo")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"Version", "Vendor"}
    assert body["Version"] and body["Vendor"]


def test_license_info(http: httpx.Client) -> None:
    response = http.get("/v1/licenseInfo")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"clientFlags"}
    assert isinstance(body["clientFlags"], list) and all(isinstance(f, str) for f in body["clientFlags"])
    assert "REST_API" in body["clientFlags"]


def test_keystore_statistics(http: httpx.Client) -> None:
    response = http.get("/v1/keystore/statistics")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"keyStoreStatistics"}
    assert isinstance(body["keyStoreStatistics"], str) and body["keyStoreStatistics"]


def test_generate_random(http: httpx.Client) -> None:
    values = []
    for _ in range(2):
        response = http.get("/v1/generateRandom/32")
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"random"}
        values.append(base64.b64decode(body["random"], validate=True))
    assert all(len(v) == 32 for v in values)
    assert values[0] != values[1]
    one = http.get("/v1/generateRandom/1")
    assert len(base64.b64decode(one.json()["random"])) == 1


@pytest.mark.parametrize("length", ["0", "70000", "-1"])
def test_generate_random_out_of_range(http: httpx.Client, length: str) -> None:
    body = assert_tsb_error(http.get(f"/v1/generateRandom/{length}"), 619, 400)
    assert body["reason"] == "res.error.invalid.number.range"
    assert body["message"] == "'length' must be between 1 and 65536"


def test_health(http: httpx.Client) -> None:
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "UP"}  # open route: no partition names, no backend


def test_health_down_names_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hsmgate.hsm.base import BackendUnavailable

    settings = soft_settings(tmp_path, partition="secret-partition-name")
    with LiveServer(settings) as server, server.client() as client:
        partition = server.app.state.gateway.services("secret-partition-name").partition

        def unreachable(_length: int) -> bytes:
            raise BackendUnavailable("token 'secret-partition-name' is gone")

        monkeypatch.setattr(partition, "generate_random", unreachable)
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "DOWN"}
    assert "secret" not in response.text


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_trailing_slash_is_not_redirected(http: httpx.Client, method: str) -> None:
    """Starlette would answer "/v1/key/" with a redirect whose Location it builds from the
    request's Host header (an open redirect for anyone who can set it); hsmgate answers 404."""
    response = http.request(method, "/v1/key/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert "location" not in response.headers
    assert_tsb_error(response, 102, 404)
    assert http.get("/v1/key").status_code == 200  # the route itself is there


def test_root_redirects_to_swagger(http: httpx.Client) -> None:
    response = http.get("/", follow_redirects=False)
    assert response.status_code in (301, 302, 303, 307, 308)
    assert response.headers["location"] == "/swagger-ui/index.html"


def test_swagger_ui_is_html(http: httpx.Client) -> None:
    response = http.get("/swagger-ui/index.html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "/v3/api-docs" in response.text


def test_openapi_document(http: httpx.Client) -> None:
    response = http.get("/v3/api-docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    operations = [op for path in document["paths"].values() for op in path.values() if isinstance(op, dict)]
    operation_ids = {op.get("operationId") for op in operations}
    assert {"createKey", "synchronousSign", "verifySignature"} <= operation_ids
    tags = {tag for op in operations for tag in op.get("tags", [])}
    assert {"Keys", "Synchronous Key Operations", "Service Information"} <= tags
    assert document["paths"]["/v1/key"]["post"]["operationId"] == "createKey"
    assert document["paths"]["/v1/synchronousSign"]["post"]["operationId"] == "synchronousSign"
    assert document["paths"]["/v1/verify"]["post"]["operationId"] == "verifySignature"
