"""mTLS over real TLS connections: how uvicorn exposes the peer certificate (measured), client
certificates accepted and refused in need and want mode, the certificate as the principal."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from hsmgate.auth.mtls import TLS_PROTOCOL
from hsmgate.auth.roles import Role
from hsmgate.store.audit import AuditRepository
from tests.auth.conftest import API_KEY_SETTINGS, ROLE_KEYS
from tests.auth.pki import Issued, Pki
from tests.helpers import LiveServer, assert_tsb_error, free_port


class Certificates:
    def __init__(self, directory: Path) -> None:
        self.pki = Pki(directory / "ca")
        self.server = self.pki.issue("localhost", server=True)
        self.operator = self.pki.issue("app-operator")  # mapped by subject DN → keyOperation
        self.admin = self.pki.issue("app-admin")  # mapped by fingerprint → keyManagement, partition default
        self.unmapped = self.pki.issue("app-unmapped")
        self.stranger = Pki(directory / "other-ca", name="Other CA").issue("app-operator")  # same DN, other CA

    def settings(self, mode: str = "need", **extra: object) -> dict[str, object]:
        from cryptography.hazmat.primitives import hashes

        fingerprint = self.admin.certificate.fingerprint(hashes.SHA256()).hex(":").upper()
        return {
            "tls_cert": self.server.cert, "tls_key": self.server.key, "tls_client_ca": self.pki.ca_file,
            "tls_client_auth": mode,
            "mtls_identities": {
                # written the way `openssl x509 -subject -nameopt RFC2253` prints it, with a space
                self.operator.subject.replace(",", ", "): {"roles": ["keyOperation"]},
                f"sha256:{fingerprint}": {"roles": ["keyManagement"], "partition": "default"},
            },
            **extra,
        }

    def client(self, server: LiveServer, identity: Issued | None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        if identity is not None:
            context.load_cert_chain(str(identity.cert), str(identity.key))
        return server.client(verify=context)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def need_server(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[LiveServer]:
    from tests.auth.conftest import auth_settings

    with LiveServer(auth_settings(tmp_path_factory.mktemp("mtls-need"), **certs.settings("need"))) as server:
        yield server


@pytest.fixture(scope="module")
def want_server(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[LiveServer]:
    from tests.auth.conftest import auth_settings

    settings = certs.settings("want", **API_KEY_SETTINGS)
    with LiveServer(auth_settings(tmp_path_factory.mktemp("mtls-want"), **settings)) as server:
        yield server


# -- the measurement: where uvicorn puts the peer certificate -----------------------------------------


async def _echo_scope(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    tls = (scope.get("extensions") or {}).get("tls")
    body = json.dumps({"keys": sorted(scope), "tls": tls}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _scope_seen(certs: Certificates, http_protocol: str) -> dict[str, Any]:
    port = free_port()
    config = uvicorn.Config(_echo_scope, host="127.0.0.1", port=port, log_level="warning", http=http_protocol,
                            ssl_certfile=str(certs.server.cert), ssl_keyfile=str(certs.server.key),
                            ssl_ca_certs=str(certs.pki.ca_file), ssl_cert_reqs=ssl.CERT_REQUIRED)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        context = ssl.create_default_context(cafile=str(certs.pki.ca_file))
        context.load_cert_chain(str(certs.operator.cert), str(certs.operator.key))
        return httpx.get(f"https://127.0.0.1:{port}/", verify=context).json()
    finally:
        server.should_exit = True
        thread.join(10)


def test_uvicorn_exposes_no_tls_information_but_our_protocol_does(certs: Certificates) -> None:
    """uvicorn verifies the client certificate but puts nothing about it into the ASGI scope;
    the transport has it (ssl_object.getpeercert) and TlsScopeProtocol adds the ASGI TLS extension."""
    plain = _scope_seen(certs, "auto")
    assert plain["tls"] is None and "extensions" not in plain["keys"]
    ours = _scope_seen(certs, TLS_PROTOCOL)
    chain = ours["tls"]["client_cert_chain"]
    assert len(chain) == 1 and chain[0].startswith("-----BEGIN CERTIFICATE-----")
    from cryptography import x509

    assert x509.load_pem_x509_certificate(chain[0].encode()).subject == certs.operator.certificate.subject
    assert ours["tls"]["tls_version"].startswith("TLS")


# -- need ---------------------------------------------------------------------------------------------


def test_mapped_certificate_is_the_principal(need_server: LiveServer, certs: Certificates) -> None:
    with certs.client(need_server, certs.operator) as http:
        assert http.get("/v1/generateRandom/8").status_code == 200
        refused = http.get("/v1/key")
        assert_tsb_error(refused, 400, 403)
        assert certs.operator.subject in refused.json()["message"]
    with certs.client(need_server, certs.admin) as http:  # mapped by its SHA-256 fingerprint
        assert http.get("/v1/key").status_code == 200
        assert http.get("/v1/generateRandom/8").status_code == 403
    with certs.client(need_server, certs.operator) as http:
        http.post("/v1/verify", json={"verifySignatureRequest": {
            "signKeyName": "attestation-key", "payload": "AA==", "signature": "AA==",
            "signatureAlgorithm": "SHA256_WITH_RSA"}})
    records = list(AuditRepository(need_server.app.state.db).records("default"))
    assert any(r["principal"] == certs.operator.subject and r["auth_method"] == "mtls"
               and r["operation"] == "verifySignature" for r in records)


def test_unmapped_certificate_authenticates_nothing(need_server: LiveServer, certs: Certificates) -> None:
    with certs.client(need_server, certs.unmapped) as http:
        response = http.get("/v1/generateRandom/8")
        assert_tsb_error(response, 618, 401)
        assert "app-unmapped" in response.json()["message"]
        assert http.get("/health").status_code == 200


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_need_refuses_the_handshake_without_a_trusted_certificate(need_server: LiveServer, certs: Certificates,
                                                                  who: str) -> None:
    identity = None if who == "none" else certs.stranger  # same DN as a mapped certificate, other CA
    with certs.client(need_server, identity) as http, pytest.raises(httpx.TransportError):
        http.get("/health")


def test_plain_http_to_the_tls_port_gets_nothing(need_server: LiveServer) -> None:
    with httpx.Client(base_url=need_server.url.replace("https", "http"), timeout=10) as http, \
            pytest.raises(httpx.TransportError):
        http.get("/v1/generateRandom/8")


# -- want ---------------------------------------------------------------------------------------------


def test_want_without_certificate_falls_back_to_other_methods(want_server: LiveServer, certs: Certificates) -> None:
    with certs.client(want_server, None) as http:
        missing = http.get("/v1/generateRandom/8")
        assert_tsb_error(missing, 416, 401)
        assert "client certificate" in missing.json()["message"]
        key = {"X-API-KEY": ROLE_KEYS[Role.KEY_OPERATION][0]}
        assert http.get("/v1/generateRandom/8", headers=key).status_code == 200
    with certs.client(want_server, certs.operator) as http:
        assert http.get("/v1/generateRandom/8").status_code == 200


def test_want_still_refuses_an_untrusted_certificate(want_server: LiveServer, certs: Certificates) -> None:
    with certs.client(want_server, certs.stranger) as http, pytest.raises(httpx.TransportError):
        http.get("/health")


def test_every_presented_credential_must_allow_the_call(want_server: LiveServer, certs: Certificates) -> None:
    """Certificate (keyOperation) plus a key-management API key: neither alone may do both."""
    management = {"X-API-KEY": ROLE_KEYS[Role.KEY_MANAGEMENT][0]}
    with certs.client(want_server, certs.operator) as http:
        assert http.get("/v1/key", headers=management).status_code == 403
        assert http.get("/v1/generateRandom/8", headers=management).status_code == 401
        assert http.get("/v1/generateRandom/8", headers={"X-API-KEY": "wrong-key-wrong-key"}).status_code == 401
    with certs.client(want_server, certs.unmapped) as http:  # an unmapped certificate is no credential
        assert http.get("/v1/key", headers=management).status_code == 200


@pytest.mark.parametrize("common_name", ["ops\n2026-01-01 00:00:00,000 INFO hsmgate.audit: forged", "ops\u202egnp.exe",
                                         "ops\x1b[31m"])
def test_certificate_subjects_with_control_or_format_characters_are_refused(
        tmp_path: Path, certs: Certificates, common_name: str) -> None:
    """Mapped by fingerprint, or by the ``*`` entry, such a certificate would name the caller in the
    logs and the audit log; it is refused (401 / 618) without echoing the subject."""
    from cryptography.hazmat.primitives import hashes

    from tests.auth.conftest import auth_settings

    odd = certs.pki.issue(common_name)
    fingerprint = odd.certificate.fingerprint(hashes.SHA256()).hex()
    for key in (f"sha256:{fingerprint}", "*"):
        settings = certs.settings("need", mtls_identities={key: {"roles": ["keyOperation"]},
                                                           certs.operator.subject: {"roles": ["keyOperation"]}})
        with LiveServer(auth_settings(tmp_path / key[:6], **settings)) as server, certs.client(server, odd) as http:
            response = http.get("/v1/generateRandom/8")
            assert response.status_code == 401, response.text
            assert response.json()["errorCode"] == 618 and "control or format characters" in response.json()["message"]
            assert common_name not in response.text
            records = list(AuditRepository(server.app.state.db).records("default"))
            assert not any(common_name in str(r["principal"]) for r in records)
            with certs.client(server, certs.operator) as fine:  # an ordinary certificate still works
                assert fine.get("/v1/generateRandom/8").status_code == 200
