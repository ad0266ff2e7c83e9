"""Fixtures of the authentication tests: role keys, servers with authentication configured."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hsmgate.auth.roles import Role
from tests.helpers import LiveServer, soft_settings

#: Two keys per role (rollover): the first and the second are both valid.
ROLE_KEYS: dict[Role, tuple[str, str]] = {role: (f"{role}-{secrets.token_hex(12)}", f"{role}-{secrets.token_hex(12)}")
                                          for role in Role}
API_KEY_SETTINGS = {
    "api_keys_key_management": list(ROLE_KEYS[Role.KEY_MANAGEMENT]),
    "api_keys_key_operation": list(ROLE_KEYS[Role.KEY_OPERATION]),
    "api_keys_approver": list(ROLE_KEYS[Role.APPROVER]),
    "api_keys_service": list(ROLE_KEYS[Role.SERVICE]),
    "api_keys_approver_key_management": list(ROLE_KEYS[Role.APPROVER_KEY_MANAGEMENT]),
}


def auth_settings(data_dir: Path, **overrides: object):  # type: ignore[no-untyped-def]
    """Soft-backend settings outside dev mode (authentication enforced)."""
    return soft_settings(data_dir, **{"dev": False, **overrides})


@pytest.fixture(scope="module")
def api_key_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(auth_settings(tmp_path_factory.mktemp("api-keys"), **API_KEY_SETTINGS)) as server:
        yield server


@pytest.fixture()
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start servers with the given settings overrides; all stopped at the end of the test."""
    started: list[LiveServer] = []

    def start(data_dir: Path | None = None, **overrides: object) -> LiveServer:
        server = LiveServer(auth_settings(data_dir or tmp_path / f"data{len(started)}", **overrides))
        server.__enter__()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)


def ec_key_body(label: str) -> dict[str, object]:
    """POST /v1/key body: a P-256 signing key that may be deleted."""
    return {"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
            "attributes": {"sign": True, "extractable": False, "modifiable": True, "destroyable": True,
                           "sensitive": True, "decrypt": False, "unwrap": False}}


def sign_body(label: str, payload: str = "UGF5bG9hZA==") -> dict[str, object]:
    return {"signRequest": {"payload": payload, "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}}
