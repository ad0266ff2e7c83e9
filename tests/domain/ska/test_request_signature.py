"""The ``requestSignature`` whitelist (TSB 2.2.0) over HTTP: application key pairs made here with
``cryptography``, request signatures made here as the Go client makes them (RSA PKCS#1 v1.5 over
Go's ``json.Compact`` of the inner request as sent), bodies written byte by byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from hsmgate.bootstrap import request_signature_rule
from hsmgate.domain.ska.request_signature import compact, member_value
from hsmgate.settings import ConfigError
from tests.helpers import LiveServer, assert_tsb_error, b64, soft_settings, unique

ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate_pem(key: PrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "application")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def app_keys() -> dict[str, PrivateKey]:
    return {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP384R1()),
            "stranger": rsa.generate_private_key(public_exponent=65537, key_size=2048)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, app_keys: dict[str, PrivateKey]) -> Iterator[LiveServer]:
    """The RSA key whitelisted by its certificate file, the EC key by its fingerprint."""
    directory = tmp_path_factory.mktemp("request-signature")
    pem = directory / "application.pem"
    pem.write_bytes(certificate_pem(app_keys["rsa"]))
    fingerprint = hashes.Hash(hashes.SHA256())
    fingerprint.update(spki(app_keys["ec"]))
    settings = soft_settings(directory / "data", allowed_request_certificates=str(pem),
                             allowed_request_key_fingerprints=fingerprint.finalize().hex(":").upper())
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def key_name(http: httpx.Client) -> str:
    """A key without policy: an asynchronous sign with it executes at once (201)."""
    label = unique("app-signed")
    response = http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                          "attributes": ATTRIBUTES})
    assert response.status_code == 201, response.text
    return label


def sign_request(key_name: str, payload: bytes = b"pay me") -> dict[str, Any]:
    return {"payload": b64(payload), "payloadType": "UNSPECIFIED", "signKeyName": key_name, "keyPassword": None,
            "signatureAlgorithm": "SHA256_WITH_ECDSA", "metaData": None, "metaDataSignature": None}


def go_compact(inner: dict[str, Any]) -> bytes:
    """What Go's json.Marshal then json.Compact give for ``inner`` (keys in insertion order)."""
    return json.dumps(inner, separators=(",", ":")).encode()


def signature_of(key: PrivateKey, message: bytes, digest: str = "SHA-256") -> dict[str, str]:
    algorithm = {"SHA-256": hashes.SHA256(), "SHA-384": hashes.SHA384(), "SHA3-256": hashes.SHA3_256()}[digest]
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(message, padding.PKCS1v15(), algorithm)
    else:
        signature = key.sign(message, ec.ECDSA(algorithm))
    return {"signature": b64(signature), "digestAlgorithm": digest, "publicKey": b64(spki(key))}


def envelope(inner_bytes: bytes, signature: dict[str, str] | None, name: str = "signRequest") -> bytes:
    """The body as sent, the inner request's bytes untouched."""
    return b'{"%s":%s,"requestSignature":%s}' % (name.encode(), inner_bytes, json.dumps(signature).encode())


def post(http: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return http.post(path, content=body, headers={"Content-Type": "application/json"})


def test_a_request_signed_as_the_go_client_signs_is_accepted(http: httpx.Client, key_name: str,
                                                              app_keys: dict[str, PrivateKey]) -> None:
    inner = go_compact(sign_request(key_name))
    response = post(http, "/v1/sign", envelope(inner, signature_of(app_keys["rsa"], inner)))
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"signRequestId"}


def test_the_signature_covers_the_request_as_sent_whitespace_aside(http: httpx.Client, key_name: str,
                                                                    app_keys: dict[str, PrivateKey]) -> None:
    request = sign_request(key_name)
    reordered = dict(reversed(list(request.items())))  # not the order the model declares
    pretty = json.dumps(reordered, indent=3).replace(":", " :\t").encode()
    signed = go_compact(reordered)
    assert pretty != signed
    response = post(http, "/v1/sign", envelope(pretty, signature_of(app_keys["ec"], signed, "SHA-384")))
    assert response.status_code == 201, response.text


def test_a_signature_over_a_re_serialised_request_is_refused(http: httpx.Client, key_name: str,
                                                             app_keys: dict[str, PrivateKey]) -> None:
    request = sign_request(key_name)
    sent = go_compact(dict(reversed(list(request.items()))))
    resorted = json.dumps(request, separators=(",", ":"), sort_keys=True).encode()
    response = post(http, "/v1/sign", envelope(sent, signature_of(app_keys["rsa"], resorted)))
    assert_tsb_error(response, 403, 400, naming="requestSignature.signature")


def test_a_tampered_request_is_refused(http: httpx.Client, key_name: str, app_keys: dict[str, PrivateKey]) -> None:
    signed = go_compact(sign_request(key_name, b"pay me 1"))
    sent = go_compact(sign_request(key_name, b"pay me 9"))
    response = post(http, "/v1/sign", envelope(sent, signature_of(app_keys["rsa"], signed)))
    assert_tsb_error(response, 403, 400, naming="does not verify")


def test_a_key_not_whitelisted_is_402(http: httpx.Client, key_name: str, app_keys: dict[str, PrivateKey]) -> None:
    inner = go_compact(sign_request(key_name))
    response = post(http, "/v1/sign", envelope(inner, signature_of(app_keys["stranger"], inner)))
    assert_tsb_error(response, 402, 400, naming="not a whitelisted application key")


@pytest.mark.parametrize("signature", [None, {"signature": None, "digestAlgorithm": "SHA-256", "publicKey": None}])
def test_a_missing_signature_is_403(http: httpx.Client, key_name: str, signature: dict[str, Any] | None) -> None:
    response = post(http, "/v1/sign", envelope(go_compact(sign_request(key_name)), signature))
    assert_tsb_error(response, 403, 400, naming="requestSignature.signature is missing")
    unsigned = json.dumps({"signRequest": sign_request(key_name)}).encode()  # no requestSignature at all
    assert_tsb_error(post(http, "/v1/sign", unsigned), 403, 400)


def test_an_unknown_digest_is_403_naming_it(http: httpx.Client, key_name: str,
                                            app_keys: dict[str, PrivateKey]) -> None:
    inner = go_compact(sign_request(key_name))
    signature = {**signature_of(app_keys["rsa"], inner), "digestAlgorithm": "MD5"}
    assert_tsb_error(post(http, "/v1/sign", envelope(inner, signature)), 403, 400,
                     naming="requestSignature.digestAlgorithm")
    sha3 = signature_of(app_keys["rsa"], inner, "SHA3-256")
    assert post(http, "/v1/sign", envelope(inner, sha3)).status_code == 201


def test_the_inner_request_twice_is_refused(http: httpx.Client, key_name: str,
                                            app_keys: dict[str, PrivateKey]) -> None:
    signed = go_compact(sign_request(key_name, b"shown to the approvers"))
    other = go_compact(sign_request(key_name, b"executed"))
    body = b'{"signRequest":%s,"signRequest":%s,"requestSignature":%s}' % (
        signed, other, json.dumps(signature_of(app_keys["rsa"], signed)).encode())
    assert_tsb_error(post(http, "/v1/sign", body), 403, 400, naming="exactly once")


ASYNC = {  # path -> (envelope, inner request) of every asynchronous request
    "/v1/decrypt": ("decryptRequest", {"encryptedPayload": b64(b"x"), "decryptKeyName": "k",
                                       "cipherAlgorithm": "RSA"}),
    "/v1/unwrap": ("unwrapKeyRequest", {"wrappedKey": b64(b"x"), "label": "new", "unwrapKeyName": "k",
                                        "wrapMethod": "AES_WRAP", "attributes": ATTRIBUTES}),
    "/v1/decapsulate": ("decapsulationRequest", {"decapsulationKeyName": "k", "ciphertext": b64(b"x")}),
    "/v1/block": ("blockRequest", {"blockKeyName": "k"}),
    "/v1/unblock": ("unblockRequest", {"unblockKeyName": "k"}),
    "/v1/modify": ("modifyRequest", {"modifyKeyName": "k", "policy": {}}),
    "/v1/certificate/request": ("csrSignRequest", {"signKeyName": "k", "signatureAlgorithm": "SHA256_WITH_ECDSA",
                                                   "validity": 1,
                                                   "standardCertificateAttributes": {"commonName": "x"}}),
    "/v1/certificate/sign": ("signCertificateRequest", {"signKeyName": "k", "certificateSigningRequest": "x",
                                                        "signatureAlgorithm": "SHA256_WITH_ECDSA", "validity": 1}),
    "/v1/certificate/selfsign": ("selfSignCertificateRequest", {"signKeyName": "k", "commonName": "x",
                                                               "signatureAlgorithm": "SHA256_WITH_ECDSA",
                                                               "validity": 1}),
}


@pytest.mark.parametrize("path", sorted(ASYNC))
def test_every_asynchronous_request_must_be_signed(http: httpx.Client, path: str,
                                                   app_keys: dict[str, PrivateKey]) -> None:
    name, inner = ASYNC[path]
    response = post(http, path, envelope(go_compact(inner), None, name))
    if response.status_code == 400 and response.json()["errorCode"] == 600:
        pytest.fail(f"the test's {name} does not validate: {response.text}")
    assert_tsb_error(response, 403, 400, naming="requestSignature")
    stranger = post(http, path, envelope(go_compact(inner), signature_of(app_keys["stranger"], go_compact(inner)),
                                         name))
    assert_tsb_error(stranger, 402, 400)
    signed = post(http, path, envelope(go_compact(inner), signature_of(app_keys["rsa"], go_compact(inner)), name))
    assert signed.json().get("errorCode") not in (402, 403), signed.text  # past the rule: the key "k" is missing


def test_refusals_are_in_the_audit_log(http: httpx.Client, key_name: str) -> None:
    post(http, "/v1/sign", envelope(go_compact(sign_request(key_name)), None))
    response = http.get("/v1/hsm/log/records", params={"operation": "checkRequestSignature", "keyName": key_name,
                                                       "limit": 1000})
    records = [r["record"] for r in response.json()["records"]]
    assert records and all(r["outcome"] == "error" and r["error_code"] in (402, 403) for r in records)


def test_synchronous_requests_and_a_gateway_without_whitelist_ignore_it(tmp_path: Path, http: httpx.Client,
                                                                         key_name: str) -> None:
    garbage = {"signature": b64(b"no"), "digestAlgorithm": "MD5", "publicKey": b64(b"no")}
    sync = post(http, "/v1/synchronousSign", envelope(go_compact(
        {"payload": b64(b"x"), "signKeyName": key_name, "signatureAlgorithm": "SHA256_WITH_ECDSA"}), garbage))
    assert sync.status_code == 200, sync.text
    with LiveServer(soft_settings(tmp_path)) as live, live.client() as client:
        label = unique("no-whitelist")
        assert client.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                            "attributes": ATTRIBUTES}).status_code == 201
        for signature in (None, garbage):
            response = post(client, "/v1/sign", envelope(go_compact(sign_request(label)), signature))
            assert response.status_code == 201, response.text


def test_compact_and_member_value_follow_go() -> None:
    # json.Compact in Go: white space outside strings removed, nothing else touched
    assert compact(b'{ "a" : "x  y\\" }",\n\t"b" : [1, 2.50, {"c" :\r\n null}] }') == \
        b'{"a":"x  y\\" }","b":[1,2.50,{"c":null}]}'
    body = b'{"requestSignature": {"signRequest": 1}, "sign\\u0052equest" :  {"a": [1, {"b": "}"}]} \n}'
    assert member_value(body, "signRequest") == b'{"a": [1, {"b": "}"}]}'
    assert member_value(b'{"x": 1}', "signRequest") is None


def test_a_whitelist_that_cannot_be_read_stops_the_gateway(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    for overrides in ({"allowed_request_certificates": str(tmp_path / "missing.pem")},
                      {"allowed_request_certificates": str(empty)},
                      {"allowed_request_key_fingerprints": "abcd"}):
        with pytest.raises(ConfigError, match="HSMGATE_ALLOWED_REQUEST"):
            request_signature_rule(soft_settings(tmp_path, **overrides))
    key = ec.generate_private_key(ec.SECP256R1())
    both = tmp_path / "both.pem"
    both.write_bytes(certificate_pem(key) + key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert request_signature_rule(soft_settings(tmp_path, allowed_request_certificates=str(both))).enabled
