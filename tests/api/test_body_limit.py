"""The request body limit (api/body_limit.py, HSMGATE_MAX_BODY_BYTES): an oversized Content-Length
is refused before a byte of the body is read, a chunked body as soon as it passes the limit — both
before authentication, with 413 and a TSB error body — while a batch of HSMGATE_MAX_BATCH items of
the TSB's largest size still goes through under the default limit."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from hsmgate.api.body_limit import (
    ITEM_BYTES,
    TSB_MAX_REQUEST_BYTES,
    BodyLimitMiddleware,
    default_max_body_bytes,
    max_batch_body_bytes,
)
from hsmgate.domain.keys import MAX_LABEL_LENGTH
from hsmgate.domain.passwords import MAX_PASSWORD_LENGTH
from tests.helpers import LiveServer, soft_settings

OPERATOR_KEY = "operator-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef0123"
AUTH = {"dev": False, "api_keys_key_operation": [OPERATOR_KEY], "api_keys_key_management": [ADMIN_KEY]}
ERROR_KEYS = {"errorCode", "reason", "message"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Authentication on, and a limit of 256 KiB on every route (batches included)."""
    settings = soft_settings(tmp_path_factory.mktemp("limited"), max_body_bytes=256 * 1024,
                             max_batch_body_bytes=256 * 1024, **AUTH)
    with LiveServer(settings) as server:
        yield server


def exchange(server: LiveServer, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes, float]:
    """Send ``head`` and ``body`` (not necessarily a whole request) on a fresh connection and read
    the answer until the server closes the connection: status, headers, body, seconds taken."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    elapsed = time.monotonic() - started
    head_text, _, answer = data.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, answer, elapsed


def request_head(path: str, *, length: int | None = None, api_key: str | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: hsmgate", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    if api_key:
        lines.append(f"X-API-KEY: {api_key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(data: bytes, size: int = 16 * 1024) -> bytes:
    """``data`` as HTTP/1.1 chunks, without the final empty chunk (the body is not finished)."""
    return b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size))


def assert_too_large(status: int, headers: dict[str, str], body: bytes, limit: int) -> None:
    assert status == 413, body
    assert headers["connection"] == "close"
    error = json.loads(body)
    assert set(error) == ERROR_KEYS and error["errorCode"] == 600, error
    assert error["reason"] == "res.error.input.validation.failed"
    assert f"limit of {limit} bytes" in error["message"]


def test_the_default_is_sized_to_a_batch_of_max_batch_items(tmp_path: Path) -> None:
    assert default_max_body_bytes(1000) == 96_624_576 == 1_048_576 + 1000 * (87_384 + 8_192)
    assert max_batch_body_bytes(soft_settings(tmp_path)) == 96_624_576
    assert max_batch_body_bytes(soft_settings(tmp_path, max_batch=10)) == 1_048_576 + 10 * 95_576
    assert max_batch_body_bytes(soft_settings(tmp_path, max_batch_body_bytes=5000)) == 5000
    assert soft_settings(tmp_path).max_body_bytes == 1_048_576  # every route but the batches


def test_a_large_single_operation_is_refused_under_the_default_limits(tmp_path: Path) -> None:
    """A 20 MB payload on /v1/synchronousSign (one operation: the TSB allows 64 KiB) is refused
    before authentication; the same bytes fit the batch route's limit."""
    with LiveServer(soft_settings(tmp_path, **AUTH)) as server:
        status, _, answer, _ = exchange(server, b"POST /v1/synchronousSign HTTP/1.1\r\nHost: x\r\n"
                                                b"Content-Type: application/json\r\n"
                                                b"Content-Length: 20000000\r\n\r\n")
        assert status == 413 and json.loads(answer)["errorCode"] == 600
        assert b"HSMGATE_MAX_BODY_BYTES" in answer
        status, _, answer, _ = exchange(server, b"POST /v1/synchronousSignBatch HTTP/1.1\r\nHost: x\r\n"
                                                b"Content-Type: application/json\r\n"
                                                b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        assert status == 401  # within the limit: authentication answers


@pytest.mark.parametrize("path", ["/v1/key", "/v1/synchronousSign", "/v1/synchronousSignBatch"])
def test_an_unauthenticated_oversized_content_length_is_refused_before_the_body_is_sent(
        tmp_path: Path, path: str) -> None:
    """The review's case: 100 MB announced to a server with the default limit. No byte of the body
    is sent, so an answer proves none was waited for."""
    with LiveServer(soft_settings(tmp_path, **AUTH)) as server:
        status, headers, body, elapsed = exchange(server, request_head(path, length=100_000_000))
    assert_too_large(status, headers, body, 96_624_576 if path.endswith("Batch") else 1_048_576)
    assert elapsed < 2


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(limited: LiveServer) -> None:
    """Unauthenticated, no Content-Length: 256 KiB + 1 byte of a body that never ends is answered
    at once (the server does not wait for the rest)."""
    limit = 256 * 1024
    status, headers, body, elapsed = exchange(limited, request_head("/v1/key"), chunked(b"x" * (limit + 1)))
    assert_too_large(status, headers, body, limit)
    assert elapsed < 2


def test_a_chunked_body_on_a_key_operation_is_refused_too(limited: LiveServer,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Authenticated (a key operation reads its body only after authentication); the operation's
    failure on the body it never got in full is no bug to log."""
    limit = 256 * 1024
    head = request_head("/v1/synchronousSign", api_key=OPERATOR_KEY)
    with caplog.at_level(logging.ERROR):
        status, headers, body, elapsed = exchange(limited, head, chunked(b" " * (limit + 1)))
    assert_too_large(status, headers, body, limit)
    assert elapsed < 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_bodies_up_to_the_limit_are_read(limited: LiveServer) -> None:
    """A body of exactly the limit is read and validated (here: a key request whose label is too long);
    one byte more is not."""
    limit = 256 * 1024
    with limited.client(headers={"X-API-KEY": ADMIN_KEY}) as http:
        filler = b'{"label": "' + b"x" * (limit - 13) + b'"}'
        assert len(filler) == limit
        response = http.post("/v1/key", content=filler, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and "'label'" in response.json()["message"], response.text
        response = http.post("/v1/key", content=filler + b" ", headers={"Content-Type": "application/json"})
        assert response.status_code == 413, response.text


def test_a_maximum_size_batch_still_works_under_the_default_limit(tmp_path: Path) -> None:
    """HSMGATE_MAX_BATCH items, each with a 64 KiB payload, a key name of 256 characters and a
    password of 1024 characters sent as a char[]: every item fits the per-item budget, the request
    the default limit, and every signature verifies."""
    batch = 4
    settings = soft_settings(tmp_path, max_batch=batch, **AUTH)
    label = ("max-size-" + "k" * MAX_LABEL_LENGTH)[:MAX_LABEL_LENGTH]
    password = ("Pw-" + "p" * MAX_PASSWORD_LENGTH)[:MAX_PASSWORD_LENGTH]
    payloads = [bytes([n]) * TSB_MAX_REQUEST_BYTES for n in range(batch)]
    items = [{"signKeyName": label, "payload": base64.b64encode(payload).decode(), "payloadType": "UNSPECIFIED",
              "keyPassword": list(password), "signatureAlgorithm": "EDDSA"} for payload in payloads]
    body = json.dumps({"signRequests": items}).encode()
    assert all(len(json.dumps(item)) <= ITEM_BYTES for item in items)
    assert len(body) <= max_batch_body_bytes(settings)
    with LiveServer(settings) as server:
        with server.client(headers={"X-API-KEY": ADMIN_KEY}) as http:
            created = http.post("/v1/key", json={
                "label": label, "algorithm": "ED", "curveOid": "1.3.101.112", "password": list(password),
                "attributes": {"sign": True, "decrypt": False, "unwrap": False, "destroyable": True}})
            assert created.status_code == 201, created.text
            public = serialization.load_der_public_key(base64.b64decode(created.json()["json"]["publicKey"]))
        with server.client(headers={"X-API-KEY": OPERATOR_KEY}) as http:
            response = http.post("/v1/synchronousSignBatch", content=body,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text[:500]
    results = response.json()["results"]
    assert isinstance(public, ed25519.Ed25519PublicKey) and len(results) == batch
    for payload, result in zip(payloads, results, strict=True):
        public.verify(base64.b64decode(result["signature"]), payload)


# -- the middleware on its own ------------------------------------------------------------------


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    body = await Request(scope, receive).body()
    await Response(f"read {len(body)}")(scope, receive, send)


def run_middleware(limit: int, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, list[Message]]:
    """Drive the middleware with ``chunks``: how many were asked for, and what was sent."""
    import asyncio

    asked = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal asked
        asked += 1
        return {"type": "http.request", "body": chunks[asked - 1], "more_body": asked < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    asyncio.run(BodyLimitMiddleware(reading_app, max_body_bytes=limit, max_batch_body_bytes=limit,
                                    batch_paths=frozenset())(scope, receive, send))
    return asked, sent


def test_the_middleware_stops_reading_at_the_chunk_that_passes_the_limit() -> None:
    asked, sent = run_middleware(10, [b"abcd"] * 100, [])
    assert asked == 3  # 4, 8, 12 > 10: not one chunk more
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]
    assert b"read" not in b"".join(m.get("body", b"") for m in sent)  # the application's answer was dropped


def test_the_middleware_refuses_a_content_length_without_reading() -> None:
    asked, sent = run_middleware(10, [b"abcd"] * 100, [(b"content-length", b"400")])
    assert asked == 0 and sent[0]["status"] == 413


def test_the_middleware_passes_bodies_within_the_limit() -> None:
    asked, sent = run_middleware(12, [b"abcd"] * 3, [(b"content-length", b"12")])
    assert asked == 3 and sent[0]["status"] == 200 and sent[1]["body"] == b"read 12"
