"""API keys per role over real HTTP: every role against every path group, missing and wrong keys,
rollover, the lenient CONFLICT rule, open paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hsmgate.auth.roles import Role
from tests.auth.conftest import API_KEY_SETTINGS, ROLE_KEYS, ec_key_body, sign_body
from tests.helpers import LiveServer, assert_tsb_error

VERIFY_KEY = "role-check-verify-key"  # a caller's key: internal keys (the attestation key) refuse every use
VERIFY_BODY = {"verifySignatureRequest": {"signKeyName": VERIFY_KEY, "payload": "AA==", "signature": "AA==",
                                          "signatureAlgorithm": "SHA256_WITH_ECDSA"}}

#: One group per role with the routes hsmgate has; each request succeeds when the role is right.
PATH_GROUPS: dict[Role, list[tuple[str, str, dict[str, Any] | None]]] = {
    Role.KEY_MANAGEMENT: [
        ("GET", "/v1/key", None),
        ("POST", "/v1/key/attributes", {"label": "attestation-key"}),
        ("GET", "/v1/key/attestation-key/attributes", None),
    ],
    Role.KEY_OPERATION: [
        ("GET", "/v1/generateRandom/16", None),
        ("POST", "/v1/verify", VERIFY_BODY),
        ("POST", "/v1/verifyBatch", {"verifyRequests": [VERIFY_BODY["verifySignatureRequest"]]}),
    ],
    Role.SERVICE: [
        ("GET", "/v1/versionInfo", None),
        ("GET", "/v1/licenseInfo", None),
        ("GET", "/v1/keystore/statistics", None),
    ],
}


@pytest.fixture(scope="module", autouse=True)
def verify_key(api_key_server: LiveServer) -> None:
    with api_key_server.client() as http:
        response = http.post("/v1/key", headers={"X-API-KEY": ROLE_KEYS[Role.KEY_MANAGEMENT][0]},
                             json=ec_key_body(VERIFY_KEY))
        assert response.status_code in (201, 400), response.text  # 400: made by an earlier module


CASES = [(role, group, method, path, body) for role in Role for group, requests in PATH_GROUPS.items()
         for method, path, body in requests]


def call(http: httpx.Client, method: str, path: str, body: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    return http.request(method, path, json=body, headers=headers or {})


@pytest.mark.parametrize(("role", "group", "method", "path", "body"), CASES,
                         ids=[f"{r}-{m}-{p}" for r, _g, m, p, _b in CASES])
def test_each_role_on_each_path_group(api_key_server: LiveServer, role: Role, group: Role, method: str, path: str,
                                      body: dict[str, Any] | None) -> None:
    with api_key_server.client() as http:
        for key in ROLE_KEYS[role]:  # both keys of the role (rollover)
            response = call(http, method, path, body, {"X-API-KEY": key})
            if role is group:
                assert response.status_code == 200, response.text
            else:  # the TSB answers a key of another role like a wrong key: 401 / 631
                assert_tsb_error(response, 631, 401)


@pytest.mark.parametrize(("method", "path", "body"), [r for requests in PATH_GROUPS.values() for r in requests])
def test_missing_key_is_416_and_wrong_key_is_631(api_key_server: LiveServer, method: str, path: str,
                                                 body: dict[str, Any] | None) -> None:
    with api_key_server.client() as http:
        missing = call(http, method, path, body)
        assert missing.status_code == 401
        assert missing.json() == {"errorCode": 416, "reason": "res.error.missing.api.key",
                                  "message": "missing credentials: send an X-API-KEY header"}
        wrong = call(http, method, path, body, {"X-API-KEY": "not-a-configured-key-at-all"})
        assert wrong.status_code == 401
        assert wrong.json()["errorCode"] == 631 and wrong.json()["reason"] == "res.error.invalid.api.key"
        prefix = call(http, method, path, body, {"X-API-KEY": ROLE_KEYS[Role.SERVICE][0][:-1]})
        assert_tsb_error(prefix, 631, 401)


def test_key_management_round_trip_with_its_key(api_key_server: LiveServer) -> None:
    management = {"X-API-KEY": ROLE_KEYS[Role.KEY_MANAGEMENT][1]}
    operation = {"X-API-KEY": ROLE_KEYS[Role.KEY_OPERATION][0]}
    with api_key_server.client() as http:
        created = http.post("/v1/key", headers=management, json=ec_key_body("api-key-roles"))
        assert created.status_code == 201, created.text
        assert http.post("/v1/key", headers=operation, json=ec_key_body("nope")).status_code == 401
        signed = http.post("/v1/synchronousSign", headers=operation, json=sign_body("api-key-roles"))
        assert signed.status_code == 200, signed.text
        refused = http.post("/v1/synchronousSign", headers=management, json=sign_body("api-key-roles"))
        assert_tsb_error(refused, 631, 401)
        assert http.delete("/v1/key/api-key-roles", headers=operation).status_code == 401
        assert http.delete("/v1/key/api-key-roles", headers=management).status_code == 200


def test_open_paths_need_no_key(api_key_server: LiveServer) -> None:
    with api_key_server.client() as http:
        assert http.get("/health").status_code == 200
        assert http.get("/v3/api-docs").status_code == 200
        assert http.get("/swagger-ui/index.html").status_code == 200
        assert http.get("/", follow_redirects=False).status_code in (302, 307)
        document = http.get("/v3/api-docs").json()
        assert {"apiKey", "bearerJwt"} <= set(document["components"]["securitySchemes"])


def test_the_answer_does_not_say_which_role_a_key_has(api_key_server: LiveServer) -> None:
    """A valid key of another role and an unknown key get the same body."""
    with api_key_server.client() as http:
        other = http.get("/v1/versionInfo", headers={"X-API-KEY": ROLE_KEYS[Role.KEY_OPERATION][0]}).json()
        unknown = http.get("/v1/versionInfo", headers={"X-API-KEY": "x" * 40}).json()
        assert other["errorCode"] == unknown["errorCode"] == 631


@pytest.mark.parametrize("lenient", [False, True])
def test_conflict_rule_is_off_unless_configured(serve: Callable[..., LiveServer], lenient: bool) -> None:
    server = serve(lenient_roles=lenient, **API_KEY_SETTINGS)
    with server.client() as http:
        random_with_service_key = http.get("/v1/generateRandom/8", headers={"X-API-KEY": ROLE_KEYS[Role.SERVICE][0]})
        assert random_with_service_key.status_code == (200 if lenient else 401), random_with_service_key.text
        key_list_with_service_key = http.get("/v1/key", headers={"X-API-KEY": ROLE_KEYS[Role.SERVICE][0]})
        assert key_list_with_service_key.status_code == 401


def test_one_key_may_serve_several_roles(serve: Callable[..., LiveServer]) -> None:
    shared = "shared-key-for-two-roles-0123456789"
    server = serve(api_keys_key_operation=[shared], api_keys_service=shared)
    with server.client() as http:
        assert http.get("/v1/generateRandom/8", headers={"X-API-KEY": shared}).status_code == 200
        assert http.get("/v1/versionInfo", headers={"X-API-KEY": shared}).status_code == 200
        assert http.get("/v1/key", headers={"X-API-KEY": shared}).status_code == 401


@pytest.mark.parametrize(("method", "path", "body", "role"), [
    ("GET", "/v1/key", None, Role.KEY_MANAGEMENT),
    ("POST", "/v1/verify", VERIFY_BODY, Role.KEY_OPERATION),  # an operation route (api/operation_route.py)
    ("POST", "/v1/verifyBatch", {"verifyRequests": [VERIFY_BODY["verifySignatureRequest"]]}, Role.KEY_OPERATION),
])
def test_two_api_key_headers_are_refused(api_key_server: LiveServer, method: str, path: str,
                                         body: dict[str, Any] | None, role: Role) -> None:
    """Judged by the first header, a request with a valid key first and anything second passed,
    while a proxy or log in front may see only the second: refuse the ambiguity."""
    good, other = ROLE_KEYS[role][0], "revoked-key-the-proxy-sees-0000"
    with api_key_server.client() as http:
        for headers in ([("X-API-KEY", good), ("X-API-KEY", other)], [("X-API-KEY", good), ("x-api-key", good)]):
            response = http.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, response.text
            assert response.json()["errorCode"] == 631 and "more than one X-API-KEY" in response.json()["message"]
        assert call(http, method, path, body, {"X-API-KEY": good}).status_code == 200
