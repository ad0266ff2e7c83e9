"""Shared fixtures: settings in a temp dir, an app, and a live server on a real socket."""

from __future__ import annotations

import base64
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from hsmgate.app import create_app
from hsmgate.auth.mtls import uvicorn_tls_options
from hsmgate.settings import Settings

pytest_plugins = ["tests.softhsm_fixtures"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def soft_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir, "dev": True, "backend": "soft",
        "master_key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class LiveServer:
    """uvicorn serving an app in a background thread on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.port = free_port()
        tls = uvicorn_tls_options(settings)  # HTTPS (and client certificates) as `hsmgate serve` does
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                **tls)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
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
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def soft_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live soft-backend server for the whole test session."""
    with LiveServer(soft_settings(tmp_path_factory.mktemp("soft-server"))) as server:
        yield server


@pytest.fixture()
def client(soft_server: LiveServer) -> Iterator[httpx.Client]:
    with soft_server.client() as http:
        yield http


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
