"""The combination rules of :class:`Authenticator`, without HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from hsmgate.auth.authenticator import Authenticator, Credentials
from hsmgate.auth.errors import InvalidAccessToken, InvalidApiKey, MissingApiKey, NotAllowed
from hsmgate.settings import Settings
from tests.auth.pki import Pki

SECRET = "authenticator-tests-hs256-secret-0123456789"
KEY = "key-management-key-0123456789"


def token(partition: str, roles: list[str]) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "alice", "partition": partition, "roles": roles, "iss": "i", "aud": "a",
                       "exp": now + 60}, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authenticator, str]:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    server, client = pki.issue("localhost", server=True), pki.issue("svc")
    settings = Settings(jwt_issuer="i", jwt_audience="a", jwt_hs256_secret=SECRET, api_keys_key_management=KEY,
                        tls_cert=server.cert, tls_key=server.key, tls_client_ca=pki.ca_file, tls_client_auth="want",
                        mtls_identities={client.subject: {"roles": ["keyManagement", "keyOperation"],
                                                          "partition": "team-b"}})
    return Authenticator(settings), client.cert.read_text()


def test_open_routes_and_dev_mode() -> None:
    dev = Authenticator(Settings(dev=True))
    assert dev.authenticate("/health", Credentials()) is None
    developer = dev.authenticate("/v1/key", Credentials())
    assert developer is not None and developer.subject == "developer" and "keyManagement" in developer.roles
    assert dev.authenticate("/v1/anything", Credentials(api_key="ignored")) is not None


def test_combinations(setup: tuple[Authenticator, str]) -> None:
    auth, certificate = setup
    principal = auth.authenticate("/v1/key", Credentials(client_certificate=certificate, api_key=KEY))
    assert principal is not None
    assert (principal.subject, principal.partition, principal.authenticated_by) == \
        ("CN=svc,O=hsmgate tests", "team-b", "mtls+api-key")
    assert principal.roles == {"keyManagement"}
    both = auth.authenticate("/v1/key", Credentials(bearer_token=token("team-b", ["keyManagement"]),
                                                    client_certificate=certificate))
    assert both is not None and both.subject == "alice" and both.authenticated_by == "jwt+mtls"
    with pytest.raises(InvalidAccessToken, match="different partitions"):
        auth.authenticate("/v1/key", Credentials(bearer_token=token("default", ["keyManagement"]),
                                                 client_certificate=certificate))
    with pytest.raises(NotAllowed):
        auth.authenticate("/v1/key", Credentials(bearer_token=token("team-b", ["keyOperation"]), api_key=KEY))
    with pytest.raises(InvalidApiKey):  # a bad key is refused even next to a good certificate
        auth.authenticate("/v1/key", Credentials(client_certificate=certificate, api_key="bad-key-bad-key-bad"))
    with pytest.raises(InvalidAccessToken):
        auth.authenticate("/v1/key", Credentials(client_certificate=certificate, bearer_token="x.y.z"))
    with pytest.raises(MissingApiKey, match="X-API-KEY header or a bearer token or a client certificate"):
        auth.authenticate("/v1/key", Credentials())
    with pytest.raises(NotAllowed, match="no role may call"):
        auth.authenticate("/v1/notInTheTable", Credentials(api_key=KEY))


def test_settings_without_any_method_list_none(tmp_path: Path) -> None:
    assert Settings().auth_methods == []
    assert Settings(tls_cert=tmp_path / "c", tls_client_ca=tmp_path / "ca").auth_methods == []  # client_auth none
