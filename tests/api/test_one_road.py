"""The one road, checked on the code: every key operation is an OperationRoute whose endpoint calls the
key-use gate; routes reach no store and no backend; nothing replaces the middleware stack or imports
Starlette's private modules (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

import hsmgate
from hsmgate.api.operation_route import OperationRoute
from hsmgate.app import create_app
from tests.helpers import soft_settings

SRC = Path(hsmgate.__file__).parent
#: The operations on a key: each is an OperationRoute (one pipeline, one execution, the gate).
KEY_OPERATIONS = {
    "/v1/synchronousSign", "/v1/verify", "/v1/synchronousSignBatch", "/v1/verifyBatch", "/v1/encrypt",
    "/v1/synchronousDecrypt", "/v1/wrap", "/v1/synchronousUnwrap", "/v1/synchronousHmac", "/v1/verifyHmac",
    "/v1/encapsulate", "/v1/synchronousDecapsulate", "/v1/createRfcTimestamp", "/v1/key/export/plain",
    "/v1/certificate/synchronous/request", "/v1/certificate/synchronous/selfsign",
    "/v1/certificate/synchronous/sign", "/v1/fileEncrypt", "/v1/synchronousFileDecrypt",
}


def _python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def _api_routes(routes: list[BaseRoute]) -> list[APIRoute]:
    """The APIRoutes of a route list, into included routers (FastAPI 0.16x keeps them nested)."""
    out: list[APIRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            out += _api_routes(included.routes)
        elif isinstance(route, APIRoute):
            out.append(route)
    return out


def test_every_key_operation_is_an_operation_route(tmp_path: Path) -> None:
    app: FastAPI = create_app(soft_settings(tmp_path))
    routes = {route.path: route for route in _api_routes(app.router.routes)}
    missing = KEY_OPERATIONS - routes.keys()
    assert not missing, f"key operations not served: {missing}"
    wrong = sorted(path for path in KEY_OPERATIONS if not isinstance(routes[path], OperationRoute))
    assert not wrong, f"key operations that are not OperationRoutes: {wrong}"


def test_the_api_reaches_no_store_and_no_backend() -> None:
    offenders = [f"{path.relative_to(SRC)}: {name}" for path in _python_files(SRC / "api")
                 for name in _imports(path) if name.startswith(("hsmgate.store", "hsmgate.hsm"))]
    assert not offenders, offenders


def test_routes_call_no_backend_method() -> None:
    """``services.partition`` is hsmgate's own (attestation, checkpoints): a route may read its name
    and capabilities, never call an operation of it."""
    offenders = []
    for path in _python_files(SRC / "api" / "routes"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == "partition" and node.attr not in ("capabilities", "name"):
                offenders.append(f"{path.name}:{node.lineno}: .partition.{node.attr}")
            if isinstance(node, ast.Attribute) and node.attr in ("stores", "repository", "metadata"):
                offenders.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert not offenders, offenders


def test_nothing_replaces_the_middleware_stack() -> None:
    offenders = []
    for path in _python_files(SRC):
        text = path.read_text()
        if "build_middleware_stack" in text:
            offenders.append(f"{path.relative_to(SRC)}: build_middleware_stack")
        offenders += [f"{path.relative_to(SRC)}: {name}" for name in _imports(path)
                      if name.startswith("starlette._")]
    assert not offenders, offenders
