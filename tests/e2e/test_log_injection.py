"""``hsmgate serve`` as a real process: a caller cannot write a log line of its own (a validly
signed token whose ``sub`` carries a line feed and a fake record), in text or JSON log format."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.helpers import free_port

SECRET = "log-injection-test-secret-of-32-bytes-or-more"
FORGED = "2026-01-01 00:00:00,000 INFO hsmgate.audit: forged record"


def serve(tmp_path: Path, log_format: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "HSMGATE_DATA_DIR": str(tmp_path / "data"), "HSMGATE_MASTER_KEY": "22" * 32,
           "HSMGATE_JWT_HS256_SECRET": SECRET, "HSMGATE_JWT_ISSUER": "iss", "HSMGATE_JWT_AUDIENCE": "aud",
           "HSMGATE_LOG_FORMAT": log_format, "HSMGATE_LOG_LEVEL": "info"}
    env.pop("HSMGATE_CONFIG", None)
    process = subprocess.Popen([sys.executable, "-m", "hsmgate", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(process.communicate()[0])
        time.sleep(0.1)


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_token_subject_cannot_forge_a_log_line(tmp_path: Path, log_format: str) -> None:
    process, url = serve(tmp_path, log_format)
    try:
        now = int(time.time())
        token = jwt.encode({"sub": f"intruder\n{FORGED}", "partition": "default", "roles": ["service"],
                            "iss": "iss", "aud": "aud", "iat": now, "exp": now + 300}, SECRET, algorithm="HS256")
        response = httpx.get(f"{url}/v1/key", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    lines = output.splitlines()
    assert not any(line.startswith("2026-01-01") for line in lines), output
    assert any("refused GET /v1/key" in line for line in lines), output
    assert response.status_code == 401 and FORGED not in response.text, response.text
    if log_format == "json":
        records = [json.loads(line) for line in lines if line.startswith("{")]
        assert any(r["logger"].startswith("uvicorn") for r in records), output  # uvicorn's lines too
        banner = [line for line in lines if not line.startswith("{")]
        assert all(line.startswith("hsmgate ") for line in banner), banner  # only the start-up banner
