"""The hot routes (api/hot_route.py) answer exactly as ordinary FastAPI routes would: same error
bodies for bad input, same OpenAPI description, authentication before the body is looked at —
over real HTTP against the soft token, signatures checked with ``cryptography``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import Depends, FastAPI, Header
from starlette.types import ASGIApp, Receive, Scope, Send

from hsmgate.api.operation_route import OperationRoute
from hsmgate.api.wire.signing import SignedSynchronousSignRequestDto
from tests.helpers import LiveServer, soft_settings, unique

ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}
PAYLOAD = base64.b64encode(b"hot route").decode()


@pytest.fixture(scope="module")
def ed_key(soft_server: LiveServer) -> Iterator[tuple[str, object]]:
    label = unique("hot")
    with soft_server.client() as client:
        response = client.post("/v1/key", json={"label": label, "algorithm": "ED", "curveOid": "1.3.101.112",
                                                "attributes": ATTRIBUTES})
        assert response.status_code == 201, response.text
        public = serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))
    yield label, public


def sign_body(label: str) -> str:
    return ('{"signRequest": {"signKeyName": "%s", "payload": "%s", "signatureAlgorithm": "EDDSA"}}'
            % (label, PAYLOAD))


def test_a_trailing_comma_is_tolerated_and_the_signature_verifies(client: httpx.Client,
                                                                   ed_key: tuple[str, object]) -> None:
    label, public = ed_key
    body = sign_body(label).replace('"EDDSA"}', '"EDDSA",\n }')
    response = client.post("/v1/synchronousSign", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    public.verify(base64.b64decode(response.json()["signature"]), b"hot route")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("content", "content_type", "code", "fragment"), [
    (b"", "application/json", 600, "request body must not be empty"),
    (b'{"signRequest": ', "application/json", 621, "not valid JSON"),
    (b"\x91\x92", "application/json", 621, "not valid JSON"),
    (b"[1, 2]", "application/json", 600, "must be a JSON object"),
    (b'{"signRequest": {}}', "text/plain", 600, "must be a JSON object"),
    (b'{"signRequest": {"payload": "AA==", "signatureAlgorithm": "EDDSA"}}', "application/json", 600,
     "'signRequest.signKeyName' must not be null"),
    (b'{"signRequest": {"signKeyName": "k", "payload": "AA==", "signatureAlgorithm": "NOPE"}}',
     "application/json", 600, "Value 'NOPE' is not valid for field 'signRequest.signatureAlgorithm'"),
    (b'{"signRequest": {"signKeyName": "k", "payload": "not base64!", "signatureAlgorithm": "EDDSA"}}',
     "application/json", 600, "'signRequest.payload'"),
])
def test_bad_bodies_answer_the_tsb_error_naming_the_field(client: httpx.Client, content: bytes, content_type: str,
                                                          code: int, fragment: str) -> None:
    response = client.post("/v1/synchronousSign", content=content, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["errorCode"] == code and fragment in body["message"], body
    assert set(body) == {"errorCode", "reason", "message"}


def test_the_hot_routes_keep_their_openapi_description(client: httpx.Client) -> None:
    spec = client.get("/v3/api-docs").json()
    for path, request_model in (("/v1/synchronousSign", "SignedSynchronousSignRequestDto"),
                                ("/v1/verify", "SignedVerifyRequestDto"),
                                ("/v1/synchronousSignBatch", "SynchronousSignBatchRequestDto"),
                                ("/v1/verifyBatch", "VerifyBatchRequestDto")):
        operation = spec["paths"][path]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/" + request_model), (path, ref)
        assert {"apiKey": []} in operation["security"] and {"bearerJwt": []} in operation["security"]
        assert "400" in operation["responses"] and "200" in operation["responses"]


def test_an_unauthenticated_caller_is_refused_before_the_body_is_read(tmp_path: Path) -> None:
    settings = soft_settings(tmp_path, api_keys_key_operation=["op-key-0123456789"])
    with LiveServer(settings) as server, server.client() as client:
        for content in (b"{not json", sign_body("whatever").encode()):
            response = client.post("/v1/synchronousSign", content=content,
                                   headers={"content-type": "application/json"})
            assert response.status_code == 401, response.text
            assert response.json()["errorCode"] != 621
        response = client.post("/v1/synchronousSign", content=b"{not json",
                               headers={"content-type": "application/json", "X-API-KEY": "op-key-0123456789"})
        assert response.status_code == 400 and response.json()["errorCode"] == 621


def test_an_operation_route_refuses_parameters_it_cannot_supply() -> None:
    app = FastAPI()

    def endpoint(body: SignedSynchronousSignRequestDto,
                 other: Annotated[str, Depends(lambda: "x")]) -> None:  # pragma: no cover
        return None

    with pytest.raises(TypeError, match="unsupported parameter other"):
        app.router.add_api_route("/x", endpoint, methods=["POST"], route_class_override=OperationRoute)

    def no_body(x_thing: Annotated[str | None, Header()] = None) -> None:  # pragma: no cover
        return None

    with pytest.raises(TypeError):
        app.router.add_api_route("/y", no_body, methods=["POST"], route_class_override=OperationRoute)

    def not_a_path_parameter(keyName: str) -> None:  # pragma: no cover
        return None

    with pytest.raises(TypeError, match="unsupported parameter keyName"):
        app.router.add_api_route("/w", not_a_path_parameter, methods=["GET"], route_class_override=OperationRoute)
    # a str named like a parameter of the path is given that parameter (the deprecated GET forms)
    app.router.add_api_route("/w/{keyName}", not_a_path_parameter, methods=["GET"], route_class_override=OperationRoute)

    async def coroutine(body: SignedSynchronousSignRequestDto) -> None:  # pragma: no cover
        return None

    with pytest.raises(TypeError, match="must be a plain def"):
        app.router.add_api_route("/z", coroutine, methods=["POST"], route_class_override=OperationRoute)


@pytest.mark.parametrize("otel", [False, True])
def test_fastapi_telemetry_follows_the_otel_setting(tmp_path: Path, otel: bool) -> None:
    from hsmgate.app import create_app

    app = create_app(soft_settings(tmp_path, otel=otel))
    config = app._telemetry  # FastAPI's TelemetryConfig: what its per-request check reads
    assert (config["tracing"], config["metrics"], config["logs"]) == (otel, otel, otel)


class _Recorder:
    """A pure ASGI middleware added after the app is built: it must see every request."""

    def __init__(self, app: ASGIApp, seen: list[tuple[str, str]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def test_an_added_middleware_sees_the_key_operations(tmp_path: Path) -> None:
    """One request pipeline: sign, verify and batch requests pass through every middleware of the
    app, like any other route (no route jumps ahead of the stack)."""
    seen: list[tuple[str, str]] = []
    server = LiveServer(soft_settings(tmp_path))
    server.app.add_middleware(_Recorder, seen=seen)  # after the app is built, before it serves
    label = "pipeline-ed"
    with server, server.client() as http:
        assert http.post("/v1/key", json={"label": label, "algorithm": "ED", "curveOid": "1.3.101.112",
                                          "attributes": {"sign": True, "decrypt": False, "unwrap": False}}
                         ).status_code == 201
        sign = {"signKeyName": label, "payload": "UGF5bG9hZA==", "signatureAlgorithm": "EDDSA"}
        signature = http.post("/v1/synchronousSign", json={"signRequest": sign}).json()["signature"]
        verify = {"signKeyName": label, "payload": "UGF5bG9hZA==", "signatureAlgorithm": "EDDSA",
                  "signature": signature}
        assert http.post("/v1/verify", json={"verifySignatureRequest": verify}).json() == {"signatureValid": True}
        batch = http.post("/v1/synchronousSignBatch", json={"signRequests": [sign, sign]})
        assert batch.status_code == 200 and len(batch.json()["results"]) == 2
        assert "x-request-id" in batch.headers
    paths = [path for method, path in seen if method == "POST"]
    for path in ("/v1/synchronousSign", "/v1/verify", "/v1/synchronousSignBatch"):
        assert path in paths, f"{path} skipped the middleware stack"
