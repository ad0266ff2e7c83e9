"""Helpers of the operation tests: key creation, export, public keys, OpenSSL runs.

Every result is checked with an independent implementation (``cryptography``, the ``openssl``
command line); hsmgate never checks its own output here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import unb64, unique

#: Attributes of a test key that may do everything and be exported.
OPEN = {"sign": True, "decrypt": True, "unwrap": True, "extractable": True, "sensitive": False,
        "destroyable": True, "modifiable": True}
#: A key that may do everything but never leaves the partition.
CLOSED = {"sign": True, "decrypt": True, "unwrap": True, "extractable": False, "sensitive": True,
          "destroyable": True}


def create_key(http: httpx.Client, body: dict[str, Any], attributes: dict[str, Any] | None = None,
               prefix: str = "op", **extra: Any) -> str:
    """Create a key; returns its label."""
    label = unique(prefix)
    response = http.post("/v1/key", json={"label": label, **body, "attributes": attributes or OPEN, **extra})
    assert response.status_code == 201, response.text
    return label


def public_key_der(http: httpx.Client, label: str) -> bytes:
    response = http.post("/v1/key/attributes", json={"label": label})
    assert response.status_code == 200, response.text
    return unb64(response.json()["json"]["publicKey"])


def export(http: httpx.Client, label: str) -> dict[str, bytes | None]:
    response = http.post("/v1/key/export/plain", json={"label": label})
    assert response.status_code == 200, response.text
    return {k: unb64(v) if v else None for k, v in response.json().items()}


def openssl(*args: str, cwd: Path, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the openssl command line; fail the test with its output when it fails."""
    result = subprocess.run(["openssl", *args], cwd=cwd, input=data, capture_output=True, timeout=60,
                            check=False)
    assert result.returncode == 0, (args, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace"))
    return result
