"""POST /v1/createRfcTimestamp: tokens checked with ``openssl ts -verify`` against the TSA
certificate hsmgate self-signed for the configured key; refused without that setting."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers import LiveServer, assert_tsb_error, b64, soft_settings, unb64
from tests.domain.operations.helpers import openssl

SIGN_ONLY = {"sign": True, "decrypt": False, "unwrap": False}


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = soft_settings(tmp_path_factory.mktemp("tsa"), rfc_timestamp_key_name="tsa-key",
                             rfc_timestamp_policy="1.3.6.1.4.1.99999.1")
    with LiveServer(settings) as server, server.client() as client:
        yield client


def stamp(http: httpx.Client, payload: bytes, hash_algorithm: str = "SHA256") -> httpx.Response:
    return http.post("/v1/createRfcTimestamp", json={"payload": b64(payload), "hashAlgorithm": hash_algorithm})


def test_refused_without_a_configured_key(http: httpx.Client) -> None:
    body = assert_tsb_error(stamp(http, b"data"), 300, 400)
    assert body["reason"] == "res.error.config.not.existent" and "HSMGATE_RFC_TIMESTAMP_KEY_NAME" in body["message"]


@pytest.mark.parametrize(("key", "hash_algorithm"), [
    ({"algorithm": "RSA", "keySize": 2048}, "SHA256"),
    ({"algorithm": "EC", "curveOid": "1.3.132.0.34"}, "SHA384"),
    ({"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"}, "SHA-512"),
    ({"algorithm": "RSA", "keySize": 2048}, "sha1"),
], ids=["rsa-sha256", "p384-sha384", "p256-sha512", "rsa-sha1"])
@pytest.mark.subprocess
def test_token_verifies_with_openssl(tsa: httpx.Client, tmp_path: Path, key: dict[str, object],
                                     hash_algorithm: str) -> None:
    assert tsa.delete("/v1/key/tsa-key").status_code in (200, 404)
    assert tsa.post("/v1/key", json={"label": "tsa-key", **key,
                                     "attributes": {**SIGN_ONLY, "destroyable": True}}).status_code == 201
    payload = b"document to timestamp " + hash_algorithm.encode()
    response = stamp(tsa, payload, hash_algorithm)
    assert response.status_code == 200, response.text
    token = unb64(response.json()["timestamp"])
    (tmp_path / "data.bin").write_bytes(payload)
    (tmp_path / "token.der").write_bytes(token)
    certificate = tsa.get("/v1/certificate/tsa-key")
    assert certificate.status_code == 200, certificate.text  # self-signed at first use
    (tmp_path / "tsa.pem").write_text(certificate.json()["certificate"])
    result = openssl("ts", "-verify", "-data", "data.bin", "-in", "token.der", "-token_in", "-CAfile", "tsa.pem",
                     cwd=tmp_path)
    assert b"Verification: OK" in result.stdout
    # a different payload does not verify
    (tmp_path / "other.bin").write_bytes(payload + b"!")
    failed = subprocess.run(
        ["openssl", "ts", "-verify", "-data", "other.bin", "-in", "token.der", "-token_in", "-CAfile", "tsa.pem"],
        cwd=tmp_path, capture_output=True, check=False)
    assert failed.returncode != 0
    # the TSTInfo carries the policy and the imprint
    info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    assert isinstance(info, tsp.TSTInfo)
    assert info["policy"].dotted == "1.3.6.1.4.1.99999.1"
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == \
        hash_algorithm.lower().replace("-", "")


def test_timestamp_errors(tsa: httpx.Client) -> None:
    assert_tsb_error(stamp(tsa, b"x", "MD5"), 600, 400)
    assert tsa.delete("/v1/key/tsa-key").status_code in (200, 404)
    assert_tsb_error(stamp(tsa, b"x"), 650, 404)
    # a certificate without the timeStamping EKU is refused rather than used
    assert tsa.post("/v1/key", json={"label": "tsa-key", "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                     "attributes": {**SIGN_ONLY, "destroyable": True}}).status_code == 201
    response = tsa.post("/v1/certificate/synchronous/selfsign", json={
        "signKeyName": "tsa-key", "validity": 1, "signatureAlgorithm": "SHA256_WITH_ECDSA", "commonName": "no eku"})
    assert response.status_code == 200
    body = assert_tsb_error(stamp(tsa, b"x"), 402, 400)
    assert "timeStamping" in body["message"]


def test_ed25519_token_checked_by_hand(tsa: httpx.Client) -> None:
    """OpenSSL 3.0 has no EdDSA in CMS, so an Ed25519 token (RFC 8419: SHA-512 digests) is checked
    step by step: imprint, messageDigest attribute, ESSCertIDv2, and the signature over the DER
    SET of signed attributes with the certificate's key."""
    assert tsa.delete("/v1/key/tsa-key").status_code in (200, 404)
    assert tsa.post("/v1/key", json={"label": "tsa-key", "algorithm": "ED", "curveOid": "1.3.101.112",
                                     "attributes": {**SIGN_ONLY, "destroyable": True}}).status_code == 201
    response = stamp(tsa, b"edwards", "SHA256")
    assert response.status_code == 200, response.text
    signed_data = cms.ContentInfo.load(unb64(response.json()["timestamp"]))["content"]
    content = signed_data["encap_content_info"]["content"]
    assert content.parsed["message_imprint"]["hashed_message"].native == hashlib.sha256(b"edwards").digest()
    signer = signed_data["signer_infos"][0]
    assert signer["digest_algorithm"]["algorithm"].native == "sha512"
    assert signer["signature_algorithm"]["algorithm"].native == "ed25519"
    attributes = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert attributes["message_digest"].native == hashlib.sha512(content.contents).digest()
    cert_der = signed_data["certificates"][0].chosen.dump()
    ess = attributes["signing_certificate_v2"]["certs"][0]
    assert ess["cert_hash"].native == hashlib.sha256(cert_der).digest()
    public = x509.load_der_x509_certificate(cert_der).public_key()
    assert isinstance(public, ed25519.Ed25519PublicKey)
    signed = cms.CMSAttributes(list(signer["signed_attrs"])).dump()
    public.verify(signer["signature"].native, signed)  # raises InvalidSignature when wrong
