"""File encryption over HTTP (wave-2 §3, docs/file-encryption.md) on the soft backend and SoftHSM2:
round trips, the container checked by an independent implementation written here with
``cryptography`` in both directions, damaged containers, key refusals, passwords, SKA, internal keys
and the multipart form."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from tests.domain.ska.helpers import Approver, policy, rule, token
from tests.helpers import LiveServer, assert_tsb_error, b64, soft_settings, unb64, unique
from tests.softhsm import SoftHsmToken

P384, P256 = "1.3.132.0.34", "1.2.840.10045.3.1.7"
FILE_KEY = {"decrypt": True, "derive": True, "sign": False, "unwrap": False, "destroyable": True}
ENCRYPT_PART, DECRYPT_PART = "SignedFileEncryptRequestDto", "SignedFileDecryptRequestDto"
# the format as docs/file-encryption.md gives it, written out again here (not imported from hsmgate)
HEADER = struct.Struct(">6sBBI97s")
CHUNK, TAG = 65536, 16


@pytest.fixture(scope="module", params=["soft", pytest.param("pkcs11", marks=pytest.mark.pkcs11)])
def http(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data = tmp_path_factory.mktemp(f"file-encryption-{request.param}")
    extra: dict[str, object] = {}
    if request.param == "pkcs11":
        factory: Callable[[str], SoftHsmToken] = request.getfixturevalue("softhsm_factory")
        hsm = factory("file-encryption")
        extra = {"backend": "pkcs11", "pkcs11_module": hsm.module_path, "pkcs11_token_label": hsm.token_label,
                 "pkcs11_pin": hsm.pin}
    with LiveServer(soft_settings(data, **extra)) as live, live.client() as client:
        yield client


def create_key(http: httpx.Client, *, curve: str = P384, attributes: dict[str, bool] | None = None,
               **extra: Any) -> tuple[str, ec.EllipticCurvePublicKey]:
    label = unique("file")
    response = http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": curve,
                                          "attributes": attributes or FILE_KEY, **extra})
    assert response.status_code == 201, response.text
    public = serialization.load_der_public_key(unb64(response.json()["json"]["publicKey"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return label, public


@pytest.fixture(scope="module")
def key(http: httpx.Client) -> tuple[str, ec.EllipticCurvePublicKey]:
    return create_key(http)


def encrypt(http: httpx.Client, label: str, data: bytes, *, password: str | None = None,
            filename: str = "report.pdf") -> httpx.Response:
    request: dict[str, Any] = {"encryptKeyName": label}
    if password is not None:
        request["keyPassword"] = list(password)
    return http.post("/v1/fileEncrypt", files={
        ENCRYPT_PART: (None, json.dumps({"fileEncryptRequest": request}), "application/json"),
        "file": (filename, data, "application/octet-stream")})


def decrypt(http: httpx.Client, label: str, container: bytes, *, password: str | None = None,
            filename: str = "report.pdf.encrypted") -> httpx.Response:
    request: dict[str, Any] = {"decryptKeyName": label}
    if password is not None:
        request["keyPassword"] = password
    return http.post("/v1/synchronousFileDecrypt", files={
        DECRYPT_PART: (None, json.dumps({"fileDecryptRequest": request})),
        "file": (filename, container, "text/json")})  # the TSB documentation's curl sends type=text/json


def independent_open(private: ec.EllipticCurvePrivateKey, container: bytes) -> bytes:
    """The documented format, decrypted with ``cryptography`` alone."""
    magic, version, suite, chunk, point = HEADER.unpack_from(container)
    assert (magic, version, suite, chunk) == (b"HGFENC", 1, 1, CHUNK)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), point)
    header = container[:HEADER.size]
    secret = private.exchange(ec.ECDH(), peer)
    file_key = X963KDF(hashes.SHA256(), 32, sharedinfo=header).derive(secret)
    assert file_key == hashes_sha256(secret + b"\x00\x00\x00\x01" + header)  # X9.63 with one counter block
    aead, body = AESGCM(file_key), container[HEADER.size:]
    pieces = [body[i:i + CHUNK + TAG] for i in range(0, len(body), CHUNK + TAG)]
    return b"".join(aead.decrypt(i.to_bytes(11, "big") + (b"\x01" if i == len(pieces) - 1 else b"\x00"), piece, None)
                    for i, piece in enumerate(pieces))


def hashes_sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def independent_seal(public: ec.EllipticCurvePublicKey, data: bytes) -> bytes:
    """A container built by the test from the documented format."""
    ephemeral = ec.generate_private_key(ec.SECP384R1())
    header = HEADER.pack(b"HGFENC", 1, 1, CHUNK, point_of(ephemeral))
    aead = AESGCM(X963KDF(hashes.SHA256(), 32, sharedinfo=header).derive(ephemeral.exchange(ec.ECDH(), public)))
    pieces = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    return header + b"".join(aead.encrypt(i.to_bytes(11, "big") + (b"\x01" if i == len(pieces) - 1 else b"\x00"),
                                          piece, None) for i, piece in enumerate(pieces))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_round_trip_with_exact_lengths(http: httpx.Client, key: tuple[str, ec.EllipticCurvePublicKey],
                                       size: int) -> None:
    data = os.urandom(size)
    sealed = encrypt(http, key[0], data)
    assert sealed.status_code == 200, sealed.text
    assert sealed.headers["content-type"] == "application/octet-stream"
    assert sealed.headers["content-disposition"] == 'attachment; filename="report.pdf.encrypted"'
    chunks = max(1, -(-size // CHUNK))
    assert int(sealed.headers["content-length"]) == len(sealed.content) == HEADER.size + size + TAG * chunks
    opened = decrypt(http, key[0], sealed.content)
    assert opened.status_code == 200, opened.text
    assert opened.content == data and int(opened.headers["content-length"]) == size
    assert opened.headers["content-disposition"] == 'attachment; filename="report.pdf"'


def test_hsmgate_container_opens_with_cryptography(http: httpx.Client) -> None:
    """A P-384 key whose private half the test knows, imported with derive: hsmgate's container
    decrypts with the independent implementation above."""
    private = ec.generate_private_key(ec.SECP384R1())
    label = unique("file-imported")
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    response = http.post("/v1/key/import/plain", json={"label": label, "algorithm": "EC", "privateKey": b64(der),
                                                        "attributes": FILE_KEY})
    assert response.status_code == 200, response.text
    data = os.urandom(2 * CHUNK + 5)
    sealed = encrypt(http, label, data)
    assert sealed.status_code == 200, sealed.text
    assert independent_open(private, sealed.content) == data
    assert decrypt(http, label, sealed.content).content == data  # and hsmgate opens its own with it


def test_container_built_with_cryptography_opens_in_hsmgate(http: httpx.Client,
                                                             key: tuple[str, ec.EllipticCurvePublicKey]) -> None:
    for data in (b"", b"attack at dawn", os.urandom(CHUNK), os.urandom(2 * CHUNK + 1)):
        opened = decrypt(http, key[0], independent_seal(key[1], data))
        assert opened.status_code == 200, opened.text
        assert opened.content == data


def test_each_encryption_uses_a_fresh_ephemeral_key(http: httpx.Client,
                                                    key: tuple[str, ec.EllipticCurvePublicKey]) -> None:
    first, second = (encrypt(http, key[0], b"same").content for _ in range(2))
    assert first[12:HEADER.size] != second[12:HEADER.size] and first[HEADER.size:] != second[HEADER.size:]


def test_damaged_containers(http: httpx.Client, key: tuple[str, ec.EllipticCurvePublicKey]) -> None:
    data = os.urandom(3 * CHUNK + 100)
    good = encrypt(http, key[0], data).content
    sealed = CHUNK + TAG
    body = good[HEADER.size:]
    pieces = [body[i:i + sealed] for i in range(0, len(body), sealed)]
    header = good[:HEADER.size]
    flipped = bytearray(good)
    flipped[HEADER.size + CHUNK + 5] ^= 1
    cases_410 = {
        "byte changed": bytes(flipped),
        "chunks swapped": header + pieces[1] + pieces[0] + pieces[2] + pieces[3],
        "chunk dropped": header + pieces[0] + pieces[2] + pieces[3],
        "final chunk dropped": header + b"".join(pieces[:3]),
        "another ephemeral point": header[:12] + point_of(ec.generate_private_key(ec.SECP384R1())) + body,
        "one byte cut": good[:-1],
    }
    for name, container in cases_410.items():
        body_ = assert_tsb_error(decrypt(http, key[0], container), 410, 400)
        assert "authenticate" in body_["message"], name
    cases_623 = {
        "magic": b"XGFENC" + good[6:],
        "version": good[:6] + b"\x02" + good[7:],
        "suite": good[:7] + b"\x02" + good[8:],
        "chunk size": good[:8] + struct.pack(">I", 4096) + good[12:],
        "compressed point": good[:12] + b"\x02" + good[13:],
        "point not on the curve": good[:12] + b"\x04" + bytes(96) + good[HEADER.size:],
        "shorter than a header": good[:50],
        "length inside a tag": good[:HEADER.size + sealed + 7],
        "empty file": b"",
    }
    for name, container in cases_623.items():
        body_ = assert_tsb_error(decrypt(http, key[0], container), 623, 400)
        assert body_["reason"] == "res.error.invalid.file.header", name
    other, _ = create_key(http)
    assert_tsb_error(decrypt(http, other, good), 410, 400)


def point_of(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def test_key_refusals(http: httpx.Client) -> None:
    p256, _ = create_key(http, curve=P256)
    no_derive, _ = create_key(http, attributes={**FILE_KEY, "derive": False})
    rsa = unique("file-rsa")
    assert http.post("/v1/key", json={"label": rsa, "algorithm": "RSA", "keySize": 2048, "attributes": {
        "decrypt": True, "sign": False, "unwrap": False}}).status_code == 201
    for call in (encrypt, decrypt):
        assert_tsb_error(call(http, p256, b"x" * 200), 613, 400, naming="P-384")
        assert_tsb_error(call(http, rsa, b"x" * 200), 613, 400, naming="P-384")
        assert_tsb_error(call(http, no_derive, b"x" * 200), 701, 400, naming="derive")
        assert_tsb_error(call(http, "no-such-file-key", b"x" * 200), 650, 404)
        assert_tsb_error(call(http, "attestation-key", b"x" * 200), 614, 400, naming="internal")


def test_password_protected_key(http: httpx.Client) -> None:
    label, _ = create_key(http, password=list("correct horse"))
    assert_tsb_error(encrypt(http, label, b"data"), 620, 400)
    sealed = encrypt(http, label, b"data", password="correct horse")
    assert sealed.status_code == 200, sealed.text
    assert_tsb_error(decrypt(http, label, sealed.content), 620, 400)
    assert_tsb_error(decrypt(http, label, sealed.content, password="wrong horse"), 620, 400)
    assert decrypt(http, label, sealed.content, password="correct horse").content == b"data"


def test_ska_key_encrypts_but_never_decrypts_synchronously(http: httpx.Client) -> None:
    approver = Approver("ed25519")
    label, public = create_key(http, policy=policy(rule(token((1, [approver]), timeout=600))))
    sealed = encrypt(http, label, b"for the approvers")
    assert sealed.status_code == 200, sealed.text
    assert_tsb_error(decrypt(http, label, sealed.content), 401, 400)
    assert_tsb_error(decrypt(http, label, independent_seal(public, b"x")), 401, 400)


def test_multipart_form_errors(http: httpx.Client, key: tuple[str, ec.EllipticCurvePublicKey]) -> None:
    label = key[0]
    document = json.dumps({"fileEncryptRequest": {"encryptKeyName": label}})
    assert_tsb_error(http.post("/v1/fileEncrypt", json={"fileEncryptRequest": {"encryptKeyName": label}}), 600, 400,
                     naming="multipart/form-data")
    assert_tsb_error(http.post("/v1/fileEncrypt", files={ENCRYPT_PART: (None, document)}), 600, 400, naming="'file'")
    assert_tsb_error(http.post("/v1/fileEncrypt", files={"file": ("a", b"data")}), 600, 400, naming=ENCRYPT_PART)
    assert_tsb_error(http.post("/v1/fileEncrypt", files={ENCRYPT_PART: (None, document), "file": (None, "data")}),
                     600, 400, naming="'file'")  # a field, not a file
    assert_tsb_error(http.post("/v1/fileEncrypt", files={ENCRYPT_PART: (None, '{"fileEncryptRequest": {}}'),
                                                         "file": ("a", b"data")}), 600, 400, naming="encryptKeyName")
    assert_tsb_error(http.post("/v1/fileEncrypt", files={ENCRYPT_PART: (None, "{not json"), "file": ("a", b"data")}),
                     621, 400)
    assert_tsb_error(http.post("/v1/fileEncrypt", content=b"garbage", headers={"content-type": "multipart/form-data"}),
                     600, 400, naming="malformed multipart body")
    # the JSON part sent as a file part (curl -F 'X=@request.json') is read as well
    as_file = http.post("/v1/fileEncrypt", files={ENCRYPT_PART: ("request.json", document.encode(), "application/json"),
                                                  "file": ("../../etc/x; y.txt", b"data")})
    assert as_file.status_code == 200, as_file.text
    assert as_file.headers["content-disposition"] == 'attachment; filename="x_y.txt.encrypted"'


def test_file_size_limit(tmp_path: Path) -> None:
    with LiveServer(soft_settings(tmp_path, max_file_bytes=4096)) as live, live.client() as client:
        label, _ = create_key(client)
        assert encrypt(client, label, os.urandom(4096)).status_code == 200
        body = assert_tsb_error(encrypt(client, label, os.urandom(1024 * 1024 + 8192)), 600, 413)
        assert "HSMGATE_MAX_FILE_BYTES" in body["message"]
        # the other routes keep their own limit
        refused = client.post("/v1/synchronousSign", content=b"x" * (1024 * 1024 + 1),
                              headers={"content-type": "application/json"})
        assert_tsb_error(refused, 600, 413, naming="HSMGATE_MAX_BODY_BYTES")


def test_one_audit_record_per_file(tmp_path: Path) -> None:
    from hsmgate.store.audit import AuditRepository

    with LiveServer(soft_settings(tmp_path)) as live, live.client() as client:
        label, _ = create_key(client)
        before = len(list(AuditRepository(live.app.state.db).records("default")))
        sealed = encrypt(client, label, os.urandom(3 * CHUNK)).content
        assert decrypt(client, label, sealed).status_code == 200
        assert_tsb_error(decrypt(client, label, sealed[:-1]), 410, 400)
        records = list(AuditRepository(live.app.state.db).records("default"))[before:]
    assert [(r["operation"], r["key_label"], r["outcome"]) for r in records] == [
        ("fileEncrypt", label, "ok"), ("synchronousFileDecrypt", label, "ok"),
        ("synchronousFileDecrypt", label, "error")]
    assert records[2]["error_code"] == 410
