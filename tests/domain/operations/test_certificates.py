"""Certificates (§3.5, §5.7): CSRs checked with ``openssl req -verify``, issued certificates with
``openssl verify`` (a CA self-signed by a non-extractable key inside hsmgate, leaves from
hsmgate-made and OpenSSL-made CSRs), extensions read with ``cryptography``."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.helpers import assert_tsb_error
from tests.domain.operations.helpers import CLOSED, create_key, openssl, public_key_der

RSA = {"algorithm": "RSA", "keySize": 2048}
P256 = {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"}
CA_ATTRIBUTES = {**CLOSED, "decrypt": False, "unwrap": False}


def post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(f"/v1/certificate/synchronous/{path}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


@pytest.fixture(scope="module")
def ca(http: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """An RSA CA key that never leaves hsmgate, its self-signed certificate written to ca.pem."""
    label = create_key(http, RSA, CA_ATTRIBUTES, prefix="ca")
    answer = post(http, "selfsign", {"signKeyName": label, "validity": 365, "signatureAlgorithm": "SHA256_WITH_RSA",
                                     "commonName": "hsmgate test CA", "certificateAuthority": True,
                                     "keyUsage": ["KEY_CERT_SIGN", "CRL_SIGN", "DIGITAL_SIGNATURE"]})
    assert answer["label"] == label
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_text(answer["certificate"])
    return label, path


@pytest.mark.subprocess
def test_self_signed_ca_certificate(ca: tuple[str, Path], http: httpx.Client) -> None:
    label, path = ca
    text = path.read_text()
    assert text.startswith("-----BEGIN CERTIFICATE-----\n") and len(text.splitlines()) == 3  # one-line body
    cert = certificate(text)
    assert cert.subject == cert.issuer
    assert cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo) == public_key_der(http, label)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is True
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.key_encipherment
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.serial_number > 2**64  # random, not a counter
    openssl("verify", "-CAfile", str(path), str(path), cwd=path.parent)
    # stored with the key
    assert http.get(f"/v1/certificate/{label}").json() == {"label": label, "certificate": text}


@pytest.mark.subprocess
def test_csr_verifies_and_ca_issues_a_leaf_openssl_accepts(http: httpx.Client, ca: tuple[str, Path],
                                                           tmp_path: Path) -> None:
    ca_label, ca_path = ca
    leaf = create_key(http, P256, CA_ATTRIBUTES, prefix="leaf")
    subject = {"commonName": "leaf.example", "country": "CH", "organizationName": "hsmgate",
               "organizationUnitName": "tests", "locality": "Bern", "email": "ops@example.org"}
    answer = post(http, "request", {"signKeyName": leaf, "validity": 30, "signatureAlgorithm": "SHA256_WITH_ECDSA",
                                    "standardCertificateAttributes": subject, "keyUsage": ["DIGITAL_SIGNATURE"],
                                    "extendedKeyUsage": ["SERVER_AUTH", "CLIENT_AUTH"]})
    csr_pem = answer["certificateSigningRequest"]
    assert answer["label"] == leaf
    assert csr_pem.startswith("-----BEGIN NEW CERTIFICATE REQUEST-----\n")
    assert csr_pem.rstrip().endswith("-----END NEW CERTIFICATE REQUEST-----")
    assert all(len(line) <= 64 for line in csr_pem.splitlines())
    (tmp_path / "leaf.csr").write_text(csr_pem)
    openssl("req", "-in", "leaf.csr", "-verify", "-noout", cwd=tmp_path)
    csr = x509.load_pem_x509_csr(csr_pem.replace("NEW CERTIFICATE", "CERTIFICATE").encode())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "leaf.example"
    assert csr.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "CH"
    assert csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).critical
    # "afterwards the key carries a self-signed certificate"
    assert certificate(http.get(f"/v1/certificate/{leaf}").json()["certificate"]).subject == csr.subject

    issued = post(http, "sign", {"signKeyName": ca_label, "validity": 30, "signatureAlgorithm": "SHA384_WITH_RSA",
                                 "certificateSigningRequest": csr_pem, "certificateAuthority": False,
                                 "keyUsage": ["DIGITAL_SIGNATURE", "KEY_AGREEMENT"],
                                 "extendedKeyUsage": ["SERVER_AUTH"]})
    assert issued["label"] == ca_label
    (tmp_path / "leaf.pem").write_text(issued["certificate"])
    openssl("verify", "-CAfile", str(ca_path), "-purpose", "sslserver", "leaf.pem", cwd=tmp_path)
    cert = certificate(issued["certificate"])
    ca_cert = certificate(ca_path.read_text())
    assert cert.issuer == ca_cert.subject and cert.subject == csr.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == \
        ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30


@pytest.mark.subprocess
def test_ca_signs_an_openssl_csr(http: httpx.Client, ca: tuple[str, Path], tmp_path: Path) -> None:
    ca_label, ca_path = ca
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout", "key.pem",
            "-subj", "/CN=openssl.example/O=elsewhere", "-addext", "subjectAltName=DNS:openssl.example",
            "-out", "req.pem", cwd=tmp_path)
    issued = post(http, "sign", {"signKeyName": ca_label, "validity": 7, "signatureAlgorithm": "SHA256_WITH_RSA",
                                 "certificateSigningRequest": (tmp_path / "req.pem").read_text(),
                                 "commonName": "renamed.example", "extendedKeyUsage": ["CLIENT_AUTH"]})
    (tmp_path / "cert.pem").write_text(issued["certificate"])
    openssl("verify", "-CAfile", str(ca_path), "-purpose", "sslclient", "cert.pem", cwd=tmp_path)
    cert = certificate(issued["certificate"])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "renamed.example"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "elsewhere"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["openssl.example"]
    # the private key OpenSSL kept matches the certificate
    modulus = openssl("x509", "-in", "cert.pem", "-noout", "-pubkey", cwd=tmp_path).stdout
    assert modulus == openssl("pkey", "-in", "key.pem", "-pubout", cwd=tmp_path).stdout


@pytest.mark.subprocess
@pytest.mark.parametrize(("body", "algorithm"), [(P256, "SHA256_WITH_ECDSA"),
                                                 ({"algorithm": "EC", "curveOid": "1.3.132.0.35"}, "SHA512_WITH_ECDSA"),
                                                 ({"algorithm": "ED", "curveOid": "1.3.101.112"}, "EDDSA"),
                                                 (RSA, "SHA224_WITH_RSA")])
def test_self_signed_by_other_key_types(http: httpx.Client, tmp_path: Path, body: dict[str, Any],
                                        algorithm: str) -> None:
    label = create_key(http, body, CA_ATTRIBUTES, prefix="self")
    answer = post(http, "selfsign", {"signKeyName": label, "validity": 1, "signatureAlgorithm": algorithm,
                                     "commonName": label, "isCertificateAuthority": True})
    (tmp_path / "c.pem").write_text(answer["certificate"])
    openssl("verify", "-CAfile", "c.pem", "c.pem", cwd=tmp_path)


def test_import_get_delete(http: httpx.Client, ca: tuple[str, Path]) -> None:
    _ca_label, ca_path = ca
    label = create_key(http, RSA, CA_ATTRIBUTES, prefix="imp-cert")
    assert_tsb_error(http.get(f"/v1/certificate/{label}"), 650, 404)
    # the CA's certificate does not certify this key
    der = certificate(ca_path.read_text()).public_bytes(serialization.Encoding.DER)

    body = assert_tsb_error(http.post("/v1/certificate/import/plain",
                                      json={"label": label, "certificate": base64.b64encode(der).decode()}), 402, 400)
    assert "public key" in body["message"]
    own = post(http, "selfsign", {"signKeyName": label, "validity": 1, "signatureAlgorithm": "SHA256_WITH_RSA",
                                  "commonName": "own"})["certificate"]
    assert http.delete(f"/v1/certificate/{label}").status_code == 200
    assert_tsb_error(http.delete(f"/v1/certificate/{label}"), 650, 404)
    response = http.post("/v1/certificate/import/plain", json={"label": label, "certificate": own})  # PEM accepted
    assert response.status_code == 200, response.text
    assert response.json() == {"label": label, "certificate": own}
    assert http.get(f"/v1/certificate/{label}").json()["certificate"] == own
    # deleting the key deletes its certificate
    assert http.delete(f"/v1/key/{label}").status_code == 200
    assert_tsb_error(http.get(f"/v1/certificate/{label}"), 650, 404)


def test_certificate_errors(http: httpx.Client, ca: tuple[str, Path]) -> None:
    ca_label, _ = ca
    ec = create_key(http, P256, CA_ATTRIBUTES, prefix="err")
    selfsign = {"signKeyName": ec, "validity": 1, "signatureAlgorithm": "SHA256_WITH_RSA", "commonName": "x"}
    assert_tsb_error(http.post("/v1/certificate/synchronous/selfsign", json=selfsign), 607, 400)
    assert_tsb_error(http.post("/v1/certificate/synchronous/selfsign",
                               json={**selfsign, "signatureAlgorithm": "SHA1_WITH_RSA"}), 600, 400)
    assert_tsb_error(http.post("/v1/certificate/synchronous/selfsign",
                               json={**selfsign, "signatureAlgorithm": "SHA256_WITH_ECDSA", "validity": 0}), 600, 400)
    assert_tsb_error(http.post("/v1/certificate/synchronous/selfsign",
                               json={**selfsign, "signatureAlgorithm": "SHA256_WITH_ECDSA", "keyUsage": ["FLY"]}), 600, 400)
    sign = {"signKeyName": ca_label, "validity": 1, "signatureAlgorithm": "SHA256_WITH_RSA"}
    assert_tsb_error(
        http.post("/v1/certificate/synchronous/sign", json={**sign, "certificateSigningRequest": "garbage"}),
            628, 400)
    csr = post(http, "request", {"signKeyName": ec, "validity": 1, "signatureAlgorithm": "SHA256_WITH_ECDSA",
                                 "standardCertificateAttributes": {"commonName": "x"}})["certificateSigningRequest"]
    der = bytearray(x509.load_pem_x509_csr(csr.replace("NEW CERTIFICATE", "CERTIFICATE").encode())
                    .public_bytes(serialization.Encoding.DER))
    der[-3] ^= 1  # inside the signature

    assert_tsb_error(http.post("/v1/certificate/synchronous/sign",
                               json={**sign, "certificateSigningRequest": base64.b64encode(bytes(der)).decode()}), 411, 400)
    # a key without a certificate cannot issue
    no_cert = create_key(http, RSA, CA_ATTRIBUTES, prefix="nocert")
    assert_tsb_error(http.post("/v1/certificate/synchronous/sign",
                               json={**sign, "signKeyName": no_cert, "certificateSigningRequest": csr}), 402, 400)
    # a key without the sign attribute cannot sign anything
    no_sign = create_key(http, P256, {"sign": False, "decrypt": True, "unwrap": False}, prefix="nosign")
    body = assert_tsb_error(http.post("/v1/certificate/synchronous/selfsign",
                                      json={**selfsign, "signKeyName": no_sign, "signatureAlgorithm": "SHA256_WITH_ECDSA"}),
                            701, 400)
    assert body["message"].startswith("KEY_FUNCTION_NOT_PERMITTED")
    assert_tsb_error(http.post("/v1/certificate/synchronous/request", json={
               "signKeyName": ec, "validity": 1, "signatureAlgorithm": "SHA256_WITH_ECDSA",
               "standardCertificateAttributes": {"commonName": "x", "country": "CHE"}}), 600, 400)


def test_control_characters_in_certificate_names_are_refused(http: httpx.Client, ca: tuple[str, Path]) -> None:
    """A NUL in a common name (``good.example\\0.evil.example``) or a line feed in any name: 600
    naming the field, for each way a name enters a certificate."""
    ca_label, _ = ca
    ec = create_key(http, P256, CA_ATTRIBUTES, prefix="names")
    selfsign = {"signKeyName": ec, "validity": 1, "signatureAlgorithm": "SHA256_WITH_ECDSA"}
    body = assert_tsb_error(http.post("/v1/certificate/synchronous/selfsign",
                                      json={**selfsign, "commonName": "good.example\u0000.evil.example"}), 600, 400)
    assert "'commonName'" in body["message"] and "U+0000" in body["message"]
    body = assert_tsb_error(http.post("/v1/certificate/synchronous/request", json={
        **selfsign, "standardCertificateAttributes": {"commonName": "good.example\u0000.evil.example"}}), 600, 400)
    assert "'standardCertificateAttributes.commonName'" in body["message"]
    body = assert_tsb_error(http.post("/v1/certificate/synchronous/request", json={
        **selfsign, "standardCertificateAttributes": {"commonName": "x", "organizationName": "a\nb"}}), 600, 400)
    assert "'standardCertificateAttributes.organizationName'" in body["message"]

    csr = post(http, "request", {**selfsign, "standardCertificateAttributes": {"commonName": "fine"}})
    sign = {"signKeyName": ca_label, "validity": 1, "signatureAlgorithm": "SHA256_WITH_RSA",
            "certificateSigningRequest": csr["certificateSigningRequest"]}
    body = assert_tsb_error(http.post("/v1/certificate/synchronous/sign",
                                      json={**sign, "commonName": "good.example\u0000.evil.example"}), 600, 400)
    assert "'commonName'" in body["message"]
    # a CSR made elsewhere whose subject carries the NUL
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec as ec_keys

    key = ec_keys.generate_private_key(ec_keys.SECP256R1())
    evil = (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "good.example\u0000.evil.example")]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    body = assert_tsb_error(http.post("/v1/certificate/synchronous/sign", json={**sign, "certificateSigningRequest": evil}),
                            600, 400)
    assert "certificateSigningRequest subject commonName" in body["message"]
    evil_san = (x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fine")]))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("good.example\u0000.evil.example")]),
                               critical=False)
                .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    body = assert_tsb_error(http.post("/v1/certificate/synchronous/sign",
                                      json={**sign, "certificateSigningRequest": evil_san}), 600, 400)
    assert "subjectAltName" in body["message"]
    assert post(http, "selfsign", {**selfsign, "commonName": "r\u00e9seau \u200cok"})["certificate"]  # no control


def test_ca_signs_a_pem_csr_pasted_unescaped_into_the_json_body(http: httpx.Client, ca: tuple[str, Path]) -> None:
    """The TSB's Go client pastes a multi-line PEM CSR into the JSON body without escaping its
    newlines (raw U+000A inside a JSON string, which strict JSON forbids); the TSB (Jackson)
    accepts it, so hsmgate does too (docs/tsb-deviations.md)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_label, ca_path = ca
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pasted.example")]))
           .sign(key, hashes.SHA256()))
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    assert pem.count("\n") > 3
    body = ('{\n  "signKeyName": "' + ca_label + '",\n  "validity": 30,\n  "signatureAlgorithm": "SHA256_WITH_RSA",\n'
            '  "certificateSigningRequest": "' + pem + '"\n}')
    raw = body.encode()
    assert b"REQUEST-----\nMI" in raw  # the newlines are raw bytes inside the JSON string
    response = http.post("/v1/certificate/synchronous/sign", content=raw,
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    issued = certificate(response.json()["certificate"])
    ca_cert = certificate(ca_path.read_text())
    issued.verify_directly_issued_by(ca_cert)  # cryptography checks the CA's signature
    assert issued.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo) == \
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert issued.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pasted.example"
    # with a trailing comma as well (the parser reports only the first departure), on a flat-body route
    both = raw.replace(b'\n}', b',\n}')
    assert http.post("/v1/certificate/synchronous/sign", content=both,
                     headers={"Content-Type": "application/json"}).status_code == 200
    # a raw control character outside a string is still not JSON
    broken = raw.replace(b'"validity"', b'\x01"validity"')
    assert_tsb_error(http.post("/v1/certificate/synchronous/sign", content=broken,
                               headers={"Content-Type": "application/json"}), 621, 400)
