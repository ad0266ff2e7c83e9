"""What the tests share besides fixtures: settings in a temp dir, a live server on a real socket (in a
thread, or ``hsmgate serve`` in a process of its own), unique names, base64, and the one check of a
TSB error answer.

Test modules import from here; ``tests/conftest.py`` only turns these into fixtures.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from hsmgate.app import create_app
from hsmgate.auth.mtls import uvicorn_tls_options
from hsmgate.settings import Settings

#: Parameters of a fixture that gives each test a SQLite and a PostgreSQL database.
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

#: The keys of every TSB error body, and nothing else.
TSB_ERROR_KEYS = frozenset({"errorCode", "reason", "message"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def soft_settings(data_dir: Path, **overrides: object) -> Settings:
    """Soft-backend dev settings in ``data_dir`` with a fresh master key, plus ``overrides``."""
    values: dict[str, object] = {
        "data_dir": data_dir, "dev": True, "backend": "soft",
        "master_key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class LiveServer:
    """uvicorn serving an app in a background thread on a free loopback port.

    The app is ``create_app(settings)`` unless one built from the same settings is passed (for
    example with a test clock: ``create_app(settings, clock=clock)``).
    """

    def __init__(self, settings: Settings, *, app: FastAPI | None = None) -> None:
        self.settings = settings
        self.app = app if app is not None else create_app(settings)
        self.port = free_port()
        tls = uvicorn_tls_options(settings)  # HTTPS (and client certificates) as `hsmgate serve` does
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                **tls)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client of this server. Over plain HTTP nothing is verified, so the client skips
        loading the system's CA bundle (about 40 ms of CPU per client); TLS callers pass ``verify``."""
        if self.url.startswith("http://"):
            kwargs.setdefault("verify", False)
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]


class ServeProcess:
    """``python -m hsmgate serve --dev`` in its own process group on a free loopback port, stopped with
    SIGTERM; its output goes to ``<directory>/<name>.log``. The data directory is ``<directory>/<name>``
    unless ``data_dir`` is given; ``env`` is added to this process's environment."""

    def __init__(self, directory: Path, name: str, env: dict[str, str], workers: int = 1, *,
                 data_dir: Path | None = None, args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir if data_dir is not None else directory / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = directory / f"{name}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hsmgate", "serve", "--dev", "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--workers", str(workers), *args],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HSMGATE_LOG_LEVEL": "warning", **env},
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.url} exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.url} did not start:\n{self.log.read_text()[-4000:]}")

    def client(self, **kwargs: object) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def workers(self) -> list[int]:
        """Worker processes of ``--workers N`` (multiprocessing's resource tracker left out)."""
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        workers = []
        for pid in map(int, text.split()):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in cmdline:
                workers.append(pid)
        return workers


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def assert_tsb_error(response: httpx.Response, code: int, status: int, *,
                     naming: str | None = None) -> dict[str, Any]:
    """Assert that ``response`` is the TSB error ``code`` with HTTP ``status``; return its body.

    A TSB error is a JSON object of exactly ``errorCode``, ``reason`` (``res.error.…``) and a
    non-empty ``message``, never a stack trace. With ``naming``, the message must contain that text.
    """
    assert response.status_code == status, response.text
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == TSB_ERROR_KEYS, body
    assert body["errorCode"] == code, body
    assert isinstance(body["reason"], str) and body["reason"].startswith("res.error."), body
    assert isinstance(body["message"], str) and body["message"], body
    assert "Traceback" not in response.text
    if naming is not None:
        assert naming in body["message"], body
    return body
