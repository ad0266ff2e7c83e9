"""File downloads of the TSB (reference §3.1, §3.5; wave-2 §5.1, §5.2): the key attestation bundle
``POST /v1/key/keyAttestation`` (a zip: the key's attestation XML, its signature, the attestation
key's public key and certificate chain, a README) and the CSR file
``POST /v1/certificate/synchronous/request/download``. The zip is opened with ``zipfile``, the
signature and the certificate are checked with ``cryptography`` and with the ``openssl`` commands
the README gives."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.helpers import LiveServer, unique

SIGN = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
        "destroyable": True}
CHAIN = "PrimusHSM_Attestation.crt"


@pytest.fixture(scope="module")
def http(soft_server: LiveServer) -> Iterator[httpx.Client]:
    with soft_server.client() as client:
        yield client


def create(http: httpx.Client, body: dict[str, Any], **extra: Any) -> str:
    label = unique("attested")
    response = http.post("/v1/key", json={"label": label, **body, "attributes": SIGN, **extra})
    assert response.status_code == 201, response.text
    return label


def bundle(http: httpx.Client, label: str, password: str | None = None) -> zipfile.ZipFile:
    response = http.post("/v1/key/keyAttestation", json={"label": label, "password": password})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert f'filename="{label}-attestation.zip"' in response.headers["content-disposition"]
    return zipfile.ZipFile(io.BytesIO(response.content))


@pytest.mark.subprocess
def test_bundle_holds_the_signed_attestation_and_the_attestation_keys_certificate(http: httpx.Client,
                                                                                  tmp_path: Path) -> None:
    label = create(http, {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"})
    archive = bundle(http, label)
    assert sorted(archive.namelist()) == sorted([f"{label}.xml", f"{label}.sig", f"{label}.pem", CHAIN,
                                                 "README_hsmgate_attestation.md"])
    xml, signature = archive.read(f"{label}.xml"), archive.read(f"{label}.sig")
    attestation_key = serialization.load_pem_public_key(archive.read(f"{label}.pem"))
    assert isinstance(attestation_key, rsa.RSAPublicKey)
    attestation_key.verify(signature, xml, padding.PKCS1v15(), hashes.SHA256())  # raises if not
    # the XML describes the key: its public key, and the attributes a QTSP checks
    described = http.post("/v1/key/attributes", json={"label": label}).json()
    text = xml.decode("utf-8")
    assert f"<label>{label}</label>" in text
    assert f"<public_key>{described['json']['publicKey']}</public_key>" in text
    assert "<extractable>false</extractable>" in text and "<never_extractable>true</never_extractable>" in text
    # the attestation key's public key is the one /v1/key/attributes reports
    published = http.post("/v1/key/attributes", json={"label": "attestation-key"}).json()["json"]["publicKey"]
    der = attestation_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64encode(der).decode() == published
    # the chain: a self-signed certificate of that key, stored like any key's certificate
    chain = x509.load_pem_x509_certificates(archive.read(CHAIN))
    assert len(chain) == 1
    certificate = chain[0]
    certificate.verify_directly_issued_by(certificate)
    assert certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo) == der
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "attestation-key"
    assert certificate.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    stored = http.get("/v1/certificate/attestation-key")
    assert stored.status_code == 200, stored.text
    assert x509.load_pem_x509_certificate(stored.json()["certificate"].encode()) == certificate
    # the README's commands, run as a client would
    archive.extractall(tmp_path)
    readme = archive.read("README_hsmgate_attestation.md").decode()
    commands = [line.strip().strip("`") for line in readme.splitlines() if line.strip().startswith("openssl ")]
    assert len(commands) >= 2
    for command in commands:
        result = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert "Verified OK" in subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", f"{label}.pem", "-signature", f"{label}.sig", f"{label}.xml"],
        cwd=tmp_path, capture_output=True, text=True, check=True).stdout


def test_bundle_needs_the_key_password_and_an_existing_key(http: httpx.Client) -> None:
    label = create(http, {"algorithm": "RSA", "keySize": 2048}, password="pw-attest")
    refused = http.post("/v1/key/keyAttestation", json={"label": label})
    assert refused.status_code == 400 and refused.json()["errorCode"] == 620
    assert bundle(http, label, "pw-attest").read(f"{label}.xml").startswith(b"<?xml")
    missing = http.post("/v1/key/keyAttestation", json={"label": unique("missing")})
    assert missing.status_code == 404 and missing.json()["errorCode"] == 650


def test_file_names_in_the_bundle_are_safe_whatever_the_label(http: httpx.Client) -> None:
    label = unique("attested") + r"\..\evil name"
    response = http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                          "attributes": SIGN})
    assert response.status_code == 201, response.text
    names = zipfile.ZipFile(io.BytesIO(http.post("/v1/key/keyAttestation", json={"label": label}).content)).namelist()
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) and not name.startswith(".") for name in names), names


@pytest.mark.subprocess
def test_csr_download_is_the_csr_as_a_file(http: httpx.Client, tmp_path: Path) -> None:
    label = create(http, {"algorithm": "RSA", "keySize": 2048})
    request = {"signKeyName": label, "keyPassword": None, "signatureAlgorithm": "SHA256_WITH_RSA", "validity": 365,
               "standardCertificateAttributes": {"commonName": "securosys", "country": "CH", "locality": "ZH",
                                                 "organizationName": "Securosys SA"},
               "keyUsage": ["DIGITAL_SIGNATURE"], "extendedKeyUsage": ["ANY_EXTENDED_KEY_USAGE"]}
    response = http.post("/v1/certificate/synchronous/request/download", json=request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert f'filename="{label}.csr"' in response.headers["content-disposition"]
    pem = response.content
    assert pem.startswith(b"-----BEGIN NEW CERTIFICATE REQUEST-----\n")
    (tmp_path / "request.csr").write_bytes(pem)
    subprocess.run(["openssl", "req", "-in", "request.csr", "-verify", "-noout"], cwd=tmp_path, check=True,
                   capture_output=True)
    csr = x509.load_pem_x509_csr(pem.replace(b"NEW CERTIFICATE", b"CERTIFICATE"))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "securosys"
    spki = csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    described = http.post("/v1/key/attributes", json={"label": label}).json()["json"]["publicKey"]
    assert base64.b64encode(spki).decode() == described
    # refusals are TSB error bodies, as on the JSON twin
    wrong = http.post("/v1/certificate/synchronous/request/download", json={**request, "signatureAlgorithm":
                                                                            "SHA256_WITH_ECDSA"})
    assert wrong.status_code == 400 and wrong.json()["errorCode"] == 607
