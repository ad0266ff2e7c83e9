"""JWT bearer tokens over real HTTP: the four algorithms, the claim checks, and the attacks
(alg none, HS/RS confusion, expired, wrong audience, tampered payload …); ``hsmgate token issue``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from typer.testing import CliRunner

from hsmgate.auth.jwt_tokens import TokenIssuer, parse_ttl, thumbprint
from hsmgate.cli import cli
from hsmgate.settings import ConfigError, Settings
from tests.auth.conftest import auth_settings
from tests.helpers import LiveServer, assert_tsb_error

ISSUER, AUDIENCE = "https://issuer.example.test", "hsmgate-tests"
HS_SECRET = "a-shared-hs256-secret-of-at-least-32-bytes!"


def pem_private(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class Keys:
    def __init__(self, directory: Path) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the signing key
        self.ec = ec.generate_private_key(ec.SECP256R1())  # a PEM public key file
        self.ed = ed25519.Ed25519PrivateKey.generate()  # in the JWKS file
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not configured
        self.signing_key = directory / "signing.pem"
        self.signing_key.write_bytes(pem_private(self.rsa))
        self.ec_public = directory / "ec.pub.pem"
        self.ec_public.write_bytes(pem_public(self.ec))
        self.rsa_public_pem = pem_public(self.rsa)
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.ed.public_key()))
        self.ed_kid = "ed-key-1"
        self.jwks = directory / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [{**jwk, "kid": self.ed_kid, "use": "sig", "alg": "EdDSA"}]}))

    def settings(self) -> dict[str, object]:
        return {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, "jwt_hs256_secret": HS_SECRET,
                "jwt_public_keys": [str(self.ec_public)], "jwt_jwks_file": self.jwks,
                "jwt_signing_key": self.signing_key}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"sub": "alice", "partition": "default", "roles": ["keyManagement"], "iss": ISSUER, "aud": AUDIENCE,
              "iat": now, "nbf": now, "exp": now + 300}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("jwt-keys"))


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[LiveServer]:
    with LiveServer(auth_settings(tmp_path_factory.mktemp("jwt"), **keys.settings())) as server:
        yield server


def get_keys(server: LiveServer, token: str | None) -> Any:
    with server.client() as http:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return http.get("/v1/key", headers=headers)


def assert_invalid(response: Any, fragment: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["errorCode"] == 617 and body["reason"] == "res.error.invalid.access.token", body
    assert fragment in body["message"], body


@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256", "EdDSA"])
def test_each_algorithm_is_accepted(jwt_server: LiveServer, keys: Keys, algorithm: str) -> None:
    key, headers = {"HS256": (HS_SECRET, None), "RS256": (keys.rsa, {"kid": thumbprint(keys.rsa.public_key())}),
                    "ES256": (keys.ec, None), "EdDSA": (keys.ed, {"kid": keys.ed_kid})}[algorithm]
    token = jwt.encode(claims(sub=f"user-{algorithm}"), key, algorithm=algorithm, headers=headers)
    response = get_keys(jwt_server, token)
    assert response.status_code == 200, response.text
    assert "attestation-key" in response.json()


def test_roles_come_from_the_claims(jwt_server: LiveServer, keys: Keys) -> None:
    operator = jwt.encode(claims(roles=["keyOperation"]), keys.rsa, algorithm="RS256")
    refused = get_keys(jwt_server, operator)
    assert refused.status_code == 403
    assert refused.json()["errorCode"] == 400 and "keyManagement" in refused.json()["message"]
    with jwt_server.client() as http:
        assert http.get("/v1/generateRandom/4", headers={"Authorization": f"Bearer {operator}"}).status_code == 200
        assert http.get("/v1/versionInfo", headers={"Authorization": f"Bearer {operator}"}).status_code == 403
    nothing = jwt.encode(claims(roles=[]), keys.rsa, algorithm="RS256")
    assert get_keys(jwt_server, nothing).status_code == 403


def test_missing_token_is_406(jwt_server: LiveServer) -> None:
    response = get_keys(jwt_server, None)
    assert response.status_code == 401
    assert response.json()["errorCode"] == 406 and response.json()["reason"] == "res.error.missing.access.token"
    with jwt_server.client() as http:
        basic = http.get("/v1/key", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
        assert_tsb_error(basic, 406, 401)


def test_alg_none_is_refused(jwt_server: LiveServer) -> None:
    for alg in ("none", "None", "NONE"):
        assert_invalid(get_keys(jwt_server, unsigned({"alg": alg, "typ": "JWT"}, claims()) + "."), "not accepted")


def test_hs256_signed_with_the_rsa_public_key_is_refused(jwt_server: LiveServer, keys: Keys) -> None:
    """Algorithm confusion: the attacker knows the RSA public key and uses it as the HMAC secret."""
    for secret in (keys.rsa_public_pem, keys.rsa_public_pem.strip(),
                   keys.rsa.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)):
        for header in ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256", "kid": thumbprint(keys.rsa.public_key())}):
            signing_input = unsigned(header, claims(roles=["keyManagement", "keyOperation"]))
            signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            assert_invalid(get_keys(jwt_server, f"{signing_input}.{b64url(signature)}"), "signature")


def test_hs256_is_refused_when_no_secret_is_configured(tmp_path: Path, keys: Keys) -> None:
    settings = {**keys.settings(), "jwt_hs256_secret": None}
    with LiveServer(auth_settings(tmp_path, **settings)) as server:
        signing_input = unsigned({"alg": "HS256"}, claims())
        signature = hmac.new(keys.rsa_public_pem, signing_input.encode(), hashlib.sha256).digest()
        assert_invalid(get_keys(server, f"{signing_input}.{b64url(signature)}"), "no key configured verifies HS256")
        assert get_keys(server, jwt.encode(claims(), keys.rsa, algorithm="RS256")).status_code == 200


def test_expired_token_is_refused(jwt_server: LiveServer, keys: Keys) -> None:
    past = int(time.time()) - 3600
    token = jwt.encode(claims(iat=past - 60, nbf=past - 60, exp=past), keys.rsa, algorithm="RS256")
    assert_invalid(get_keys(jwt_server, token), "expired")


def test_token_without_exp_is_refused(jwt_server: LiveServer, keys: Keys) -> None:
    assert_invalid(get_keys(jwt_server, jwt.encode(claims(exp=None), keys.rsa, algorithm="RS256")), "'exp'")


def test_not_yet_valid_token_is_refused(jwt_server: LiveServer, keys: Keys) -> None:
    future = int(time.time()) + 3600
    assert_invalid(get_keys(jwt_server, jwt.encode(claims(nbf=future, exp=future + 60), keys.ec, algorithm="ES256")),
                   "not valid yet")


def test_wrong_audience_and_issuer_are_refused(jwt_server: LiveServer, keys: Keys) -> None:
    assert_invalid(get_keys(jwt_server, jwt.encode(claims(aud="another-service"), keys.rsa, algorithm="RS256")),
                   "aud")
    assert_invalid(get_keys(jwt_server, jwt.encode(claims(aud=None), keys.rsa, algorithm="RS256")), "'aud'")
    assert_invalid(get_keys(jwt_server, jwt.encode(claims(iss="https://evil.test"), keys.rsa, algorithm="RS256")),
                   "iss")
    many = jwt.encode(claims(aud=["other", AUDIENCE]), keys.rsa, algorithm="RS256")
    assert get_keys(jwt_server, many).status_code == 200


def test_tampered_payload_is_refused(jwt_server: LiveServer, keys: Keys) -> None:
    for key, algorithm in ((keys.rsa, "RS256"), (HS_SECRET, "HS256"), (keys.ed, "EdDSA"), (keys.ec, "ES256")):
        token = jwt.encode(claims(roles=["service"]), key, algorithm=algorithm,
                           headers={"kid": keys.ed_kid} if algorithm == "EdDSA" else None)
        header, _payload, signature = token.split(".")
        forged_payload = b64url(json.dumps(claims(roles=["keyManagement"], sub="mallory")).encode())
        assert_invalid(get_keys(jwt_server, f"{header}.{forged_payload}.{signature}"), "signature")


def test_unknown_signer_and_unknown_kid_are_refused(jwt_server: LiveServer, keys: Keys) -> None:
    assert_invalid(get_keys(jwt_server, jwt.encode(claims(), keys.stranger, algorithm="RS256")), "signature")
    assert_invalid(get_keys(jwt_server, jwt.encode(claims(), keys.rsa, algorithm="RS256", headers={"kid": "nope"})),
                   "kid 'nope'")
    assert_invalid(get_keys(jwt_server, "not.a.jwt"), "not a JWT")
    assert_invalid(get_keys(jwt_server, jwt.encode(claims(), keys.rsa, algorithm="RS384")), "not accepted")


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"partition": None}, "'partition'"),
    ({"roles": None}, "'roles'"),
    ({"roles": "keyManagement"}, "'roles'"),
    ({"roles": ["keyManagement", "superuser"]}, "superuser"),
    ({"sub": None}, "'sub'"),
])
def test_claim_schema_is_enforced(jwt_server: LiveServer, keys: Keys, overrides: dict[str, Any], fragment: str) -> None:
    assert_invalid(get_keys(jwt_server, jwt.encode(claims(**overrides), keys.rsa, algorithm="RS256")), fragment)


def test_partition_claim_binds_the_token(jwt_server: LiveServer, keys: Keys) -> None:
    elsewhere = jwt.encode(claims(partition="not-served-here"), keys.rsa, algorithm="RS256")
    response = get_keys(jwt_server, elsewhere)
    assert response.status_code == 403 and "attestation-key" not in response.text


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_numeric_dates_given_as_strings_are_refused(jwt_server: LiveServer, keys: Keys, claim: str) -> None:
    """PyJWT converts ``"exp": "1700000000"`` with int(); RFC 7519 says a NumericDate is a number."""
    values = claims()
    token = jwt.encode({**values, claim: str(values[claim])}, keys.rsa, algorithm="RS256")
    assert_invalid(get_keys(jwt_server, token), f"'{claim}' claim must be a NumericDate")
    true = jwt.encode({**values, "exp": True}, keys.rsa, algorithm="RS256")
    assert get_keys(jwt_server, true).status_code == 401


def test_token_lifetime_is_capped(jwt_server: LiveServer, keys: Keys) -> None:
    now = int(time.time())
    day = 24 * 3600
    too_long = jwt.encode(claims(iat=now, exp=now + day + 1), keys.rsa, algorithm="RS256")
    assert_invalid(get_keys(jwt_server, too_long), "HSMGATE_JWT_MAX_LIFETIME")
    # without iat the remaining lifetime counts
    no_iat = jwt.encode(claims(iat=None, nbf=None, exp=now + 30 * day), keys.rsa, algorithm="RS256")
    assert_invalid(get_keys(jwt_server, no_iat), "from now")
    # iat set back to look fresh does not help: exp - iat is what counts
    backdated = jwt.encode(claims(iat=now - day, exp=now + 3600), keys.rsa, algorithm="RS256")
    assert_invalid(get_keys(jwt_server, backdated), "from iat")
    within = jwt.encode(claims(iat=now, exp=now + day), keys.rsa, algorithm="RS256")
    assert get_keys(jwt_server, within).status_code == 200
    no_iat_within = jwt.encode(claims(iat=None, nbf=None, exp=now + 3600), keys.rsa, algorithm="RS256")
    assert get_keys(jwt_server, no_iat_within).status_code == 200


def test_token_lifetime_cap_is_configurable(tmp_path: Path, keys: Keys) -> None:
    with LiveServer(auth_settings(tmp_path, **keys.settings(), jwt_max_lifetime=600)) as server:
        now = int(time.time())
        assert_invalid(get_keys(server, jwt.encode(claims(iat=now, exp=now + 601), keys.rsa, algorithm="RS256")),
                       "at most 600 s")
        assert get_keys(server, jwt.encode(claims(iat=now, exp=now + 600), keys.rsa, algorithm="RS256")).status_code \
            == 200


def test_token_issue_command_mints_a_working_token(jwt_server: LiveServer, keys: Keys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"HSMGATE_JWT_ISSUER": ISSUER, "HSMGATE_JWT_AUDIENCE": AUDIENCE,
                        "HSMGATE_JWT_SIGNING_KEY": str(keys.signing_key)}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["token", "issue", "--sub", "ops-bot", "--role", "keyManagement",
                                      "--role", "service", "--ttl", "10m"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    payload = jwt.decode(token, keys.rsa.public_key(), algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    assert payload["sub"] == "ops-bot" and payload["partition"] == "default"
    assert payload["roles"] == ["keyManagement", "service"] and payload["exp"] - payload["iat"] == 600
    assert jwt.get_unverified_header(token)["kid"] == thumbprint(keys.rsa.public_key())
    assert get_keys(jwt_server, token).status_code == 200
    bad = CliRunner().invoke(cli, ["token", "issue", "--sub", "x", "--role", "keyManagement", "--ttl", "soon"])
    assert bad.exit_code == 2 and "invalid duration" in bad.output
    long = CliRunner().invoke(cli, ["token", "issue", "--sub", "x", "--role", "keyManagement", "--ttl", "7d"])
    assert long.exit_code == 2 and "HSMGATE_JWT_MAX_LIFETIME" in long.output
    assert len(long.output.strip().splitlines()) == 1, long.output


def test_token_issue_without_signing_key_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HSMGATE_JWT_SIGNING_KEY", "HSMGATE_JWT_HS256_SECRET", "HSMGATE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HSMGATE_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("HSMGATE_JWT_AUDIENCE", AUDIENCE)
    result = CliRunner().invoke(cli, ["token", "issue", "--sub", "x", "--role", "service"])
    assert result.exit_code == 2 and "no signing key" in result.output


def test_hs256_issuer_and_ttl_parsing() -> None:
    issuer = TokenIssuer(HS_SECRET.encode(), issuer=ISSUER, audience=AUDIENCE)
    token = issuer.issue(subject="s", partition="p", roles=[], ttl=timedelta(seconds=5), now=1000)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert parse_ttl("90") == timedelta(seconds=90) and parse_ttl("15m") == timedelta(minutes=15)
    assert parse_ttl("8h") == timedelta(hours=8) and parse_ttl("7d") == timedelta(days=7)
    for bad in ("", "0", "-5", "1y", "m"):
        with pytest.raises(ValueError):
            parse_ttl(bad)


def test_weak_or_unusable_keys_are_refused_at_start(tmp_path: Path) -> None:
    from hsmgate.auth.jwt_tokens import verification_keys

    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_hs256_secret="short")
    with pytest.raises(ValueError, match="ISSUER and HSMGATE_JWT_AUDIENCE"):
        Settings(jwt_hs256_secret=HS_SECRET)
    small = tmp_path / "small.pem"
    small.write_bytes(pem_public(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    with pytest.raises(ConfigError, match="2048"):
        verification_keys(Settings(jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_public_keys=str(small)))
    p384 = tmp_path / "p384.pem"
    p384.write_bytes(pem_public(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(ConfigError, match="P-256"):
        verification_keys(Settings(jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_public_keys=str(p384)))


def test_two_authorization_headers_are_refused(jwt_server: LiveServer, keys: Keys) -> None:
    good = jwt.encode(claims(), keys.rsa, algorithm="RS256")
    with jwt_server.client() as http:
        response = http.get("/v1/key", headers=[("Authorization", f"Bearer {good}"),
                                                ("Authorization", "Bearer something-else")])
    assert_invalid(response, "more than one Authorization header")


@pytest.mark.parametrize("subject", ["alice\n2026-01-01 00:00:00,000 INFO hsmgate.audit: forged", "bob\x1b[2J",
                                     "mallory\u202egnp.exe", "eve\u200b", "carol\u2028x", "dave\x85"])
def test_subjects_with_control_or_format_characters_are_refused(jwt_server: LiveServer, keys: Keys,
                                                                subject: str) -> None:
    """The sub names the caller in log lines and the audit log: no forged lines, no terminal escapes,
    no reversed or invisible text there. Refused even when the token lacks the route's role."""
    for roles in (["keyManagement"], ["service"]):
        token = jwt.encode(claims(sub=subject, roles=roles), keys.rsa, algorithm="RS256")
        response = get_keys(jwt_server, token)
        assert_invalid(response, "'sub' claim must not contain control or format characters")
        assert subject not in response.text
    partition = jwt.encode(claims(partition="default\n"), keys.rsa, algorithm="RS256")
    assert_invalid(get_keys(jwt_server, partition), "'partition' claim must not contain")
    fine = jwt.encode(claims(sub="J\u00fcrg M\u00fcller \u65e5\u672c"), keys.rsa, algorithm="RS256")
    assert get_keys(jwt_server, fine).status_code == 200
