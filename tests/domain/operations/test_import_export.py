"""POST /v1/key/import/plain and /v1/key/export/plain: keys made with ``cryptography`` are imported
(DER, PEM text, base64 of a PEM file; PKCS#8 and PKCS#1), then used through hsmgate and checked
with the original key material."""

from __future__ import annotations

import datetime
import os
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from tests.helpers import assert_tsb_error, b64, unb64, unique
from tests.domain.operations.helpers import OPEN, export

SIGN = {"sign": True, "decrypt": False, "unwrap": False}
DER, PEM = serialization.Encoding.DER, serialization.Encoding.PEM
PKCS8, PKCS1 = serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
NONE = serialization.NoEncryption()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def import_key(http: httpx.Client, algorithm: str, **fields: Any) -> httpx.Response:
    label = fields.pop("label", None) or unique("imp")
    return http.post("/v1/key/import/plain", json={"label": label, "algorithm": algorithm, **fields})


def imported(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def sign(http: httpx.Client, label: str, algorithm: str, payload: bytes) -> bytes:
    response = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(payload), "signKeyName": label, "signatureAlgorithm": algorithm}})
    assert response.status_code == 200, response.text
    return unb64(response.json()["signature"])


def self_signed(key: Any) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imported")])
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))


@pytest.mark.parametrize("form", ["pkcs8-der", "pkcs1-pem-text", "pkcs8-pem-file-base64"])
def test_imported_rsa_private_key_signs_like_the_original(http: httpx.Client, rsa_key: rsa.RSAPrivateKey,
                                                          form: str) -> None:
    if form == "pkcs8-der":
        private = b64(rsa_key.private_bytes(DER, PKCS8, NONE))
    elif form == "pkcs1-pem-text":
        private = rsa_key.private_bytes(PEM, PKCS1, NONE).decode()
        assert "BEGIN RSA PRIVATE KEY" in private
    else:
        private = b64(rsa_key.private_bytes(PEM, PKCS8, NONE))
    key = imported(import_key(http, "RSA", privateKey=private, attributes=SIGN))
    assert key["json"]["publicKey"] == b64(rsa_key.public_key().public_bytes(DER, SPKI))
    assert key["json"]["algorithm"] == "RSA" and key["json"]["keySize"] == 2048
    attributes = key["json"]["attributes"]
    assert attributes["alwaysSensitive"] is False and attributes["neverExtractable"] is False
    assert key["xml"].splitlines()[1] == '<private_key creation="imported">'
    signature = sign(http, key["json"]["label"], "SHA256_WITH_RSA", b"payload")
    rsa_key.public_key().verify(signature, b"payload", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP256K1(), ec.BrainpoolP256R1()],
                         ids=lambda c: c.name)
def test_imported_ec_key(http: httpx.Client, curve: ec.EllipticCurve) -> None:
    private = ec.generate_private_key(curve)
    key = imported(import_key(http, "EC", privateKey=b64(private.private_bytes(DER, PKCS8, NONE)), attributes=SIGN))
    assert key["json"]["curveOid"] == x509.ObjectIdentifier(
        {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34", "secp256k1": "1.3.132.0.10",
         "brainpoolP256r1": "1.3.36.3.3.2.8.1.1.7"}[curve.name]).dotted_string
    signature = sign(http, key["json"]["label"], "SHA256_WITH_ECDSA", b"payload")
    private.public_key().verify(signature, b"payload", ec.ECDSA(hashes.SHA256()))


def test_imported_ed25519_key(http: httpx.Client) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    key = imported(import_key(http, "ED", privateKey=b64(private.private_bytes(DER, PKCS8, NONE)), attributes=SIGN))
    assert key["json"]["curveOid"] == "1.3.101.112"
    private.public_key().verify(sign(http, key["json"]["label"], "EDDSA", b"msg"), b"msg")


def test_private_key_on_an_existing_label_is_608(http: httpx.Client, rsa_key: rsa.RSAPrivateKey) -> None:
    label = unique("imp")
    body = {"privateKey": b64(rsa_key.private_bytes(DER, PKCS8, NONE)), "attributes": SIGN}
    imported(import_key(http, "RSA", label=label, **body))
    assert_tsb_error(import_key(http, "RSA", label=label, **body), 608, 400)
    # a public key cannot replace a key pair either
    assert_tsb_error(
        import_key(http, "RSA", label=label, publicKey=b64(rsa_key.public_key().public_bytes(DER, SPKI))),
            608, 400)


def test_public_key_alone_encrypts_and_verifies_and_can_be_replaced(http: httpx.Client,
                                                                    rsa_key: rsa.RSAPrivateKey) -> None:
    label = unique("pub")
    key = imported(import_key(http, "RSA", label=label, publicKey=b64(rsa_key.public_key().public_bytes(DER, SPKI))))
    assert key["xml"].splitlines()[1] == '<public_key creation="imported">'
    attributes = key["json"]["attributes"]
    assert (attributes["sign"], attributes["decrypt"], attributes["unwrap"]) == (False, False, False)
    # encrypt with it; the original private key decrypts
    response = http.post("/v1/encrypt", json={"encryptRequest": {
        "payload": b64(b"for the owner"), "encryptKeyName": label, "cipherAlgorithm": "RSA_PADDING_OAEP_WITH_SHA256"}})
    assert response.status_code == 200, response.text
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    assert rsa_key.decrypt(unb64(response.json()["encryptedPayload"]), oaep) == b"for the owner"
    # verify a signature of the original key
    signature = rsa_key.sign(b"signed elsewhere", padding.PKCS1v15(), hashes.SHA256())
    response = http.post("/v1/verify", json={"verifySignatureRequest": {
        "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_RSA", "payload": b64(b"signed elsewhere"),
        "signature": b64(signature)}})
    assert response.json() == {"signatureValid": True}
    # no private half: no signing
    assert_tsb_error(http.post("/v1/synchronousSign", json={"signRequest": {
               "payload": b64(b"x"), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_RSA"}}), 701, 400)
    # export gives the public key; a new public key replaces the old one
    assert http.post("/v1/key/export/plain", json={"label": label}).json() == {
        "privateKey": None, "publicKey": key["json"]["publicKey"], "secretKey": None}
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(DER, SPKI)
    replaced = imported(import_key(http, "RSA", label=label, publicKey=b64(other)))
    assert replaced["json"]["publicKey"] == b64(other)


def test_certificate_alone_and_certificate_for_a_key_pair(http: httpx.Client) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed(private)
    label = unique("cert")
    key = imported(import_key(http, "EC", label=label, certificate=b64(certificate.public_bytes(DER))))
    assert key["json"]["publicKey"] == b64(private.public_key().public_bytes(DER, SPKI))
    pem = http.get(f"/v1/certificate/{label}").json()["certificate"]
    assert x509.load_pem_x509_certificate(pem.encode()) == certificate

    # a key pair imported first, then its certificate under the same label: attached
    pair = unique("pair")
    imported(import_key(http, "EC", label=pair, privateKey=b64(private.private_bytes(DER, PKCS8, NONE)),
                        attributes=SIGN))
    attached = imported(import_key(http, "EC", label=pair, certificate=certificate.public_bytes(PEM).decode()))
    assert attached["xml"].splitlines()[1] == '<private_key creation="imported">'
    assert x509.load_pem_x509_certificate(http.get(f"/v1/certificate/{pair}").json()["certificate"].encode()) \
        == certificate
    # a private key with a certificate that is not its own
    stranger = self_signed(ec.generate_private_key(ec.SECP256R1()))
    assert_tsb_error(import_key(http, "EC", privateKey=b64(private.private_bytes(DER, PKCS8, NONE)),
                                certificate=b64(stranger.public_bytes(DER)), attributes=SIGN), 402, 400)


def test_secret_keys(http: httpx.Client) -> None:
    secret = os.urandom(32)
    key = imported(import_key(http, "AES", secretKey=b64(secret), attributes=OPEN))
    assert key["json"]["keySize"] == 256 and key["xml"].splitlines()[1] == '<secret_key creation="imported">'
    label = key["json"]["label"]
    body = http.post("/v1/encrypt", json={"encryptRequest": {
        "payload": b64(b"hello"), "encryptKeyName": label, "cipherAlgorithm": "AES_GCM"}}).json()
    assert AESGCM(secret).decrypt(unb64(body["initializationVector"]), unb64(body["encryptedPayload"]), None) == b"hello"
    assert export(http, label)["secretKey"] == secret
    assert_tsb_error(import_key(http, "AES", secretKey=b64(os.urandom(20)), attributes=OPEN), 612, 400)
    # HMAC keys made elsewhere may have any length
    hmac_key = imported(import_key(http, "HMACSHA256", secretKey=b64(os.urandom(40)), attributes=SIGN))
    assert hmac_key["json"]["keySize"] == 320


@pytest.mark.parametrize(("fields", "status", "code"), [
    ({"algorithm": "AES", "privateKey": "AAAA", "attributes": OPEN}, 400, 600),
    ({"algorithm": "RSA", "secretKey": "AAAA", "attributes": OPEN}, 400, 600),
    ({"algorithm": "RSA", "publicKey": "AAAA", "certificate": "AAAA"}, 400, 600),
    ({"algorithm": "RSA"}, 400, 600),
    ({"algorithm": "AES", "attributes": OPEN}, 400, 600),
    ({"algorithm": "RSA", "privateKey": b64(b"not a key"), "attributes": SIGN}, 400, 407),
    ({"algorithm": "RSA", "publicKey": b64(b"not a key")}, 400, 407),
    ({"algorithm": "EC", "certificate": b64(b"not a certificate")}, 400, 409),
    ({"algorithm": "FOO", "secretKey": "AAAA", "attributes": OPEN}, 400, 600),
    ({"algorithm": "XMSS-SHA256_10_256", "secretKey": "AAAA", "attributes": OPEN}, 400, 613),
    ({"algorithm": "AES", "secretKey": "not base64!", "attributes": OPEN}, 400, 600),
    ({"algorithm": "AES", "secretKey": b64(b"k" * 16),
      "attributes": {"sign": False, "decrypt": False, "unwrap": False}}, 400, 606),
    ({"algorithm": "AES", "secretKey": b64(b"k" * 16), "policy": {"ruleUse": None}, "attributes": OPEN}, 400, 611),
])
def test_import_validation(http: httpx.Client, fields: dict[str, Any], status: int, code: int) -> None:
    assert_tsb_error(import_key(http, **fields), code, status)


def test_import_key_type_mismatches(http: httpx.Client, rsa_key: rsa.RSAPrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    body = assert_tsb_error(import_key(http, "RSA", privateKey=b64(ec_key.private_bytes(DER, PKCS8, NONE)),
                                       attributes=SIGN), 613, 400)
    assert "EC" in body["message"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert_tsb_error(import_key(http, "RSA", privateKey=b64(rsa_key.private_bytes(DER, PKCS8, NONE)),
                                publicKey=b64(other.public_key().public_bytes(DER, SPKI)), attributes=SIGN), 407, 400)


def test_export_only_extractable_non_sensitive_keys(http: httpx.Client) -> None:
    for attributes in ({**OPEN, "sensitive": True}, {**OPEN, "extractable": False},
                       {**OPEN, "extractable": False, "sensitive": True}):
        label = unique("noexp")
        assert http.post("/v1/key", json={"label": label, "algorithm": "AES", "keySize": 128,
                                          "attributes": attributes}).status_code == 201
        body = assert_tsb_error(http.post("/v1/key/export/plain", json={"label": label}), 701, 400)
        assert body["message"].startswith("KEY_FUNCTION_NOT_PERMITTED")
    label = unique("exp")
    assert http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.3.132.0.34",
                                      "attributes": OPEN}).status_code == 201
    exported = export(http, label)
    private = serialization.load_der_private_key(exported["privateKey"] or b"", None)
    assert private.public_key().public_bytes(DER, SPKI) == exported["publicKey"]
    assert exported["secretKey"] is None
    assert_tsb_error(http.post("/v1/key/export/plain", json={"label": "no-such-key"}), 650, 404)


def test_deprecated_get_export_goes_through_the_same_gate(http: httpx.Client) -> None:
    """``GET /v1/key/{keyName}/export/plain`` (deprecated by the TSB for the POST with a password)
    answers what the POST answers, and refuses what it refuses; it carries no password."""
    label = unique("get-exp")
    assert http.post("/v1/key", json={"label": label, "algorithm": "AES", "keySize": 256,
                                      "attributes": OPEN}).status_code == 201
    response = http.get(f"/v1/key/{label}/export/plain")
    assert response.status_code == 200, response.text
    assert response.json() == http.post("/v1/key/export/plain", json={"label": label}).json()
    secret = unb64(response.json()["secretKey"])
    encrypted = http.post("/v1/encrypt", json={"encryptRequest": {
        "payload": b64(b"exported by GET"), "encryptKeyName": label, "cipherAlgorithm": "AES_GCM"}}).json()
    assert AESGCM(secret).decrypt(unb64(encrypted["initializationVector"]), unb64(encrypted["encryptedPayload"]),
                                  None) == b"exported by GET"
    sensitive = unique("get-noexp")
    assert http.post("/v1/key", json={"label": sensitive, "algorithm": "AES", "keySize": 128,
                                      "attributes": {**OPEN, "sensitive": True}}).status_code == 201
    assert assert_tsb_error(http.get(f"/v1/key/{sensitive}/export/plain"), 701, 400)["message"].startswith(
        "KEY_FUNCTION_NOT_PERMITTED")
    guarded = unique("get-pw")
    assert http.post("/v1/key", json={"label": guarded, "algorithm": "AES", "keySize": 128, "password": "pw",
                                      "attributes": OPEN}).status_code == 201
    assert_tsb_error(http.get(f"/v1/key/{guarded}/export/plain"), 620, 400)
    assert_tsb_error(http.get("/v1/key/no-such-key/export/plain"), 650, 404)
    assert_tsb_error(http.get("/v1/key/attestation-key/export/plain"), 614, 400)  # internal keys, as on every road
    assert_tsb_error(http.get(f"/v1/key/{'k' * 300}/export/plain"), 610, 400)  # a name no key can have
