"""Dev mode answers only on loopback, however the app is started: ``uvicorn --factory
hsmgate.app:app_from_env --host 0.0.0.0`` (a real process, reached on the machine's own
non-loopback address) and the ASGI scope of every kind of route, the operation routes included."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hsmgate.api.dev_guard import is_loopback
from hsmgate.app import create_app
from tests.helpers import TSB_ERROR_KEYS, free_port, soft_settings


def own_non_loopback_address() -> str | None:
    """One of this machine's own IPv4 addresses that is not loopback (``hostname -I``), or None."""
    try:
        output = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for word in output.split():
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback:
            return word
    return None


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) == TSB_ERROR_KEYS and body["errorCode"] == 400, body
    assert "loopback" in body["message"]


@pytest.mark.subprocess
@pytest.mark.slow
def test_factory_in_dev_mode_on_all_interfaces_serves_loopback_only(tmp_path: Path) -> None:
    address = own_non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect to")
    port = free_port()
    env = {**os.environ, "HSMGATE_DEV": "true", "HSMGATE_DATA_DIR": str(tmp_path / "data"),
           "HSMGATE_MASTER_KEY": "33" * 32}
    env.pop("HSMGATE_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "hsmgate.app:app_from_env", "--host", "0.0.0.0",
         "--port", str(port), "--log-level", "info"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as local:
            assert local.get("/v1/key").status_code == 200  # loopback: the developer
        with httpx.Client(base_url=f"http://{address}:{port}", timeout=10) as remote:
            assert_refused(remote.get("/v1/key"))
            assert_refused(remote.get("/health"))
            assert_refused(remote.post("/v1/synchronousSign", json={"signRequest": {
                "payload": "AA==", "signKeyName": "attestation-key", "signatureAlgorithm": "SHA256_WITH_RSA"}}))
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert "dev mode: no authentication; requests that do not arrive on a loopback address are refused" in output


def call(app: Any, method: str, path: str, server: tuple[str, int] | None, body: bytes = b"") -> tuple[int, bytes]:
    """One request through the ASGI app with the given ``scope["server"]``."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 50000), "server": server}
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/key", b""),
    ("GET", "/health", b""),
    ("GET", "/swagger-ui/index.html", b""),
    ("POST", "/v1/synchronousSign", json.dumps({"signRequest": {  # an operation route (api/operation_route.py)
        "payload": base64.b64encode(b"x").decode(), "signKeyName": "attestation-key",
        "signatureAlgorithm": "SHA256_WITH_RSA"}}).encode()),
])
def test_every_route_is_guarded_by_the_asgi_scope(tmp_path: Path, method: str, path: str, body: bytes) -> None:
    app = create_app(soft_settings(tmp_path, host="0.0.0.0"))  # dev mode, as a factory would build it
    for server in (("192.0.2.10", 8080), ("10.1.2.3", 443), ("2001:db8::1", 8080), None):
        status, answer = call(app, method, path, server, body)
        assert status == 403, (server, answer)
        assert set(json.loads(answer)) == TSB_ERROR_KEYS
    for server in (("127.0.0.1", 8080), ("127.5.6.7", 80), ("::1", 8080), ("::ffff:127.0.0.1", 8080)):
        status, answer = call(app, method, path, server, body)
        assert status != 403 and b"loopback" not in answer, (server, answer)  # reached the route


def test_outside_dev_mode_nothing_is_guarded(tmp_path: Path) -> None:
    app = create_app(soft_settings(tmp_path, dev=False, api_keys_service=["s" * 32]))
    status, _ = call(app, "GET", "/health", ("192.0.2.10", 8080))
    assert status == 200


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.2")
    for host in ("0.0.0.0", "192.0.2.1", "::", "localhost", "fe80::1%eth0", "", "::ffff:10.0.0.1"):
        assert not is_loopback(host), host
