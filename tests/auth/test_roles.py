"""The TSB path → role table (reference §2) and its Ant-style matching."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import jwt
import pytest
from fastapi.routing import APIRoute

from hsmgate.api.approver_app import APPROVER_PATH
from hsmgate.api.docs_pages import REDOC_PATH, STATIC_PATH, SWAGGER_UI_PATH
from hsmgate.app import create_app
from hsmgate.auth.roles import OPEN_PATHS, ROLE_PATHS, Role, RoleTable, compile_pattern
from tests.auth.conftest import API_KEY_SETTINGS, ROLE_KEYS
from tests.helpers import LiveServer, assert_tsb_error, b64, soft_settings, unb64, unique


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("/v1/key", "/v1/key", True),
    ("/v1/key", "/v1/key/x", False),
    ("/v1/key/**", "/v1/key", True),
    ("/v1/key/**", "/v1/key/a/b/attributes", True),
    ("/v1/key/**", "/v1/keystore/statistics", False),
    ("/v1/key/**/attributes", "/v1/key/{keyName}/attributes", True),
    ("/v1/filtered**ApprovalTask", "/v1/filteredSignApprovalTask", True),
    ("/v1/filtered**ApprovalTask", "/v1/filteredRequests", False),
    ("/v1/generateRandom/**", "/v1/generateRandom/{length}", True),
    ("/v1/hsm/log", "/v1/hsm/logs", False),
])
def test_ant_patterns(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_pattern(pattern).match(path)) is matches


def test_table_is_the_reference_table() -> None:
    table = RoleTable()
    assert table.roles_for("/v1/key") == {Role.KEY_MANAGEMENT}
    assert table.roles_for("/v1/key/{keyName}") == {Role.KEY_MANAGEMENT}
    assert table.roles_for("/v1/synchronousSign") == {Role.KEY_OPERATION}
    assert table.roles_for("/v1/certificate/synchronous/selfsign") == {Role.KEY_OPERATION}
    assert table.roles_for("/v1/generateRandom/{length}") == {Role.KEY_OPERATION}
    assert table.roles_for("/v1/filteredSignApprovalTask") == {Role.APPROVER}
    assert table.roles_for("/v1/keystore/statistics") == {Role.SERVICE}
    assert table.roles_for("/v1/approverManagement/approver") == {Role.APPROVER_KEY_MANAGEMENT}
    assert table.roles_for("/v1/somethingNew") == frozenset()
    assert sum(len(p) for p in ROLE_PATHS.values()) == 10 + 21 + 4 + 5 + 1


def test_lenient_table_adds_the_two_client_mixups_only() -> None:
    strict, lenient = RoleTable(), RoleTable(lenient=True)
    assert strict.roles_for("/v1/generateRandom/{length}") == {Role.KEY_OPERATION}
    assert lenient.roles_for("/v1/generateRandom/{length}") == {Role.KEY_OPERATION, Role.SERVICE}
    assert lenient.roles_for("/v1/certificate/request") == {Role.KEY_OPERATION, Role.KEY_MANAGEMENT}
    assert lenient.roles_for("/v1/synchronousSign") == strict.roles_for("/v1/synchronousSign")


class MountedRoute(NamedTuple):
    """One endpoint as the app serves it: the full route template and its HTTP methods."""

    path: str
    methods: frozenset[str]
    route: object


def mounted_routes(routes: Iterable[object], prefix: str = "") -> Iterator[MountedRoute]:
    """Every endpoint reachable through ``routes``, walked by shape rather than by class.

    FastAPI before 0.16x copies the routes of an included router into ``app.router.routes`` (a flat
    list of ``APIRoute``); later versions keep one object per ``include_router`` call that holds the
    ``original_router`` and an ``include_context`` with the prefix. Starlette's ``Mount`` (and a
    nested router or sub-application) exposes ``routes`` below its ``path``. All three are followed,
    so a route is found whichever version builds the app; an object with neither shape nor a path
    fails the walk instead of being skipped.
    """
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # an included router kept as one object (FastAPI >= 0.16x)
            context = getattr(route, "include_context", None)
            yield from mounted_routes(included.routes, prefix + getattr(context, "prefix", ""))
            continue
        path = getattr(route, "path", None)
        children = getattr(route, "routes", None)
        if children is not None and path is not None and getattr(route, "methods", None) is None:
            if children:  # a Mount / Host of a router or sub-application
                yield from mounted_routes(children, prefix + path)
            else:  # a Mount of a plain ASGI app: everything below its path
                yield MountedRoute(prefix + path + "/{path:path}", frozenset({"*"}), route)
            continue
        if path is None:
            raise AssertionError(f"a route of unknown shape: {route!r}")
        yield MountedRoute(prefix + path, frozenset(getattr(route, "methods", None) or {"*"}), route)


def test_every_route_of_the_app_is_open_or_has_a_role(tmp_path: Path) -> None:
    """Deny by default is only safe if no real route is forgotten: add new routes to auth/roles.py."""
    app = create_app(soft_settings(tmp_path))
    table = RoleTable()
    api_routes = [r for r in mounted_routes(app.router.routes) if isinstance(r.route, APIRoute)]
    assert len(api_routes) > 60, f"only {len(api_routes)} API routes found: the walk misses included routers"
    # the OpenAPI document is built from the same app by FastAPI itself: every documented operation is walked
    documented = {(path, method.upper()) for path, operations in app.openapi()["paths"].items()
                  for method in operations}
    # OpenAPI writes a path parameter without its converter ({keyName:path} → {keyName})
    walked = {(re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path), method) for r in api_routes for method in r.methods}
    assert documented <= walked, f"documented but not walked: {sorted(documented - walked)}"
    # a plain Starlette route runs no FastAPI dependency, so no authentication: only the API's description
    # and the approver app's static files (its API calls carry the approver's credentials)
    plain = {r.path for r in mounted_routes(app.router.routes) if not isinstance(r.route, APIRoute)}
    # (the OpenAPI document, and the Swagger UI and ReDoc pages with their files: api/docs_pages.py)
    assert plain <= {app.openapi_url, SWAGGER_UI_PATH, REDOC_PATH, STATIC_PATH + "/{path:path}",
                     APPROVER_PATH, APPROVER_PATH + "/{path:path}"}, plain
    uncovered = sorted(f"{method} {r.path}" for r in api_routes for method in r.methods
                       if r.path not in OPEN_PATHS and not table.roles_for(r.path))
    assert uncovered == [], f"routes without a role in hsmgate/auth/roles.py: {uncovered}"


def test_verify_hmac_is_a_key_operation_over_http(serve: Callable[..., LiveServer]) -> None:
    """/v1/verifyHmac answers a keyOperation API key and a keyOperation JWT; the MAC it accepts is the one
    Python's ``hmac`` computes with the exported key, and a flipped bit is refused."""
    issuer, audience = "https://issuer.example.test", "hsmgate-roles"
    secret = "an-hs256-secret-of-at-least-32-bytes!"
    server = serve(**API_KEY_SETTINGS, jwt_issuer=issuer, jwt_audience=audience, jwt_hs256_secret=secret)
    management = {"X-API-KEY": ROLE_KEYS[Role.KEY_MANAGEMENT][0]}
    operation = {"X-API-KEY": ROLE_KEYS[Role.KEY_OPERATION][0]}
    now = int(time.time())
    claims = {"sub": "operator", "partition": "default", "roles": [str(Role.KEY_OPERATION)], "iss": issuer,
              "aud": audience, "iat": now, "nbf": now, "exp": now + 300}
    bearer = {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}
    label, payload = unique("verify-hmac"), b"a payload to authenticate"
    attributes = {"sign": True, "decrypt": False, "unwrap": False, "extractable": True, "sensitive": False,
                  "destroyable": True}

    def verify(headers: dict[str, str], mac: bytes) -> httpx.Response:
        body = {"verifyHmacRequest": {"keyName": label, "payload": b64(payload), "signature": b64(mac)}}
        return http.post("/v1/verifyHmac", headers=headers, json=body)

    with server.client() as http:
        created = http.post("/v1/key", headers=management,
                            json={"label": label, "algorithm": "HMACSHA256", "attributes": attributes})
        assert created.status_code == 201, created.text
        exported = http.post("/v1/key/export/plain", headers=management, json={"label": label})
        assert exported.status_code == 200, exported.text
        key = unb64(exported.json()["secretKey"])
        computed = http.post("/v1/synchronousHmac", headers=operation,
                             json={"hmacRequest": {"keyName": label, "payload": b64(payload)}})
        assert computed.status_code == 200, computed.text
        mac = unb64(computed.json()["keyedHash"])
        assert mac == hmac.new(key, payload, hashlib.sha256).digest()
        tampered = mac[:-1] + bytes([mac[-1] ^ 1])
        for headers in (operation, bearer):
            for signature, valid in ((mac, True), (tampered, False)):
                response = verify(headers, signature)
                assert response.status_code == 200, response.text
                assert response.json() == {"signatureValid": valid}
        # another role's API key is answered like a wrong key
        assert_tsb_error(verify(management, mac), 631, 401)
