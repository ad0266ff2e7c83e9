"""Start-up rules: no authentication → no start outside dev mode; with authentication any address
may be bound; dev mode stays loopback-only and enforces authentication once it is configured.
Plus the settings of the authentication methods (env and TOML forms)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hsmgate.app import create_app
from hsmgate.cli import cli
from hsmgate.settings import ConfigError, Settings
from tests.auth.pki import Pki
from tests.helpers import LiveServer, free_port, soft_settings

SERVICE_KEY = "service-key-0123456789abcdef"


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("HSMGATE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_serve_refuses_to_start_without_authentication(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith("hsmgate: no authentication method configured")
    assert result.output.count("hsmgate:") == 1 and "Traceback" not in result.output
    with pytest.raises(ConfigError, match="no authentication method"):
        create_app(soft_settings(tmp_path, dev=False))


def test_dev_mode_stays_loopback_only(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HSMGATE_API_KEYS_SERVICE", SERVICE_KEY)
    result = CliRunner().invoke(cli, ["serve", "--dev", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "dev mode serves only on loopback" in result.output


def test_bind_rules() -> None:
    Settings(dev=True, host="127.0.0.1").check_bind()
    with pytest.raises(ConfigError, match="no authentication"):
        Settings(dev=False, host="127.0.0.1").check_bind()
    Settings(dev=False, host="0.0.0.0", api_keys_service=SERVICE_KEY).check_bind()
    with pytest.raises(ConfigError, match="loopback"):
        Settings(dev=True, host="0.0.0.0", api_keys_service=SERVICE_KEY).check_bind()


def test_dev_mode_enforces_authentication_once_configured(tmp_path: Path) -> None:
    with LiveServer(soft_settings(tmp_path, api_keys_service=SERVICE_KEY)) as server, server.client() as http:
        assert http.get("/v1/versionInfo").status_code == 401
        assert http.get("/v1/versionInfo", headers={"X-API-KEY": SERVICE_KEY}).status_code == 200


def test_api_keys_from_env_and_toml(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HSMGATE_API_KEYS_KEY_OPERATION", f" {SERVICE_KEY}1 , {SERVICE_KEY}2 ,")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys_key_operation] == [f"{SERVICE_KEY}1", f"{SERVICE_KEY}2"]
    assert SERVICE_KEY not in repr(settings) and settings.auth_methods == ["api-key"]
    config = tmp_path / "hsmgate.toml"
    config.write_text(f'api_keys_service = ["{SERVICE_KEY}a", "{SERVICE_KEY}b"]\napi_keys_approver = "{SERVICE_KEY}c"\n'
                      '[mtls_identities."CN=app,O=Example"]\nroles = ["keyOperation"]\npartition = "team-b"\n')
    clean_env.setenv("HSMGATE_CONFIG", str(config))
    settings = Settings()
    assert len(settings.api_keys_service) == 2 and len(settings.api_keys_approver) == 1
    assert settings.mtls_identities["CN=app,O=Example"].partition == "team-b"
    clean_env.setenv("HSMGATE_API_KEYS_SERVICE", "short")
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings()


def test_tls_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="HSMGATE_TLS_CLIENT_CA"):
        Settings(tls_cert="/x.pem", tls_client_auth="need")
    with pytest.raises(ValueError, match="HSMGATE_TLS_CERT is required"):
        Settings(tls_client_ca="/ca.pem")
    with pytest.raises(ValueError):
        Settings(tls_client_auth="sometimes")


@pytest.mark.subprocess
@pytest.mark.slow
def test_serve_with_mtls_on_all_interfaces_and_two_workers(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real command: HTTPS on 0.0.0.0, client certificates required, two worker processes."""
    pki = Pki(tmp_path / "pki")
    server_cert, client = pki.issue("localhost", server=True), pki.issue("batch-job")
    port = free_port()
    env = {**os.environ, "HSMGATE_MASTER_KEY": "11" * 32, "HSMGATE_DATA_DIR": str(tmp_path / "data"),
           "HSMGATE_MTLS_IDENTITIES": json.dumps({client.subject: {"roles": ["keyOperation", "service"]}}),
           "HSMGATE_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "hsmgate", "serve", "--host", "0.0.0.0", "--port", str(port), "--workers", "2",
               "--tls-cert", str(server_cert.cert), "--tls-key", str(server_cert.key),
               "--tls-client-ca", str(pki.ca_file), "--tls-client-auth", "need"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(str(client.cert), str(client.key))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"https://127.0.0.1:{port}/v1/generateRandom/8", verify=context, timeout=5)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.stdout.read() if process.stdout else "no output") from None
                time.sleep(0.2)
        assert response.status_code == 200, response.text
        for _ in range(6):  # several connections: both workers see the certificate
            with httpx.Client(verify=context, timeout=5) as http:
                assert http.get(f"https://127.0.0.1:{port}/v1/versionInfo").status_code == 200
                assert http.get(f"https://127.0.0.1:{port}/v1/key").status_code == 403
        without = ssl.create_default_context(cafile=str(pki.ca_file))
        with pytest.raises(httpx.TransportError):
            httpx.get(f"https://127.0.0.1:{port}/health", verify=without, timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert "https://0.0.0.0" in output and "WARNING: serving plain HTTP" not in output
