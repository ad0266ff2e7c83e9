"""The Python client (sync and async) and the client commands of the CLI against a live server with
API keys, every signature checked with ``cryptography``, every decryption against a ciphertext made
with ``cryptography``."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from typer.testing import CliRunner

from hsmgate.api.wire.keys import CreateKeyAttributes, SignedKeyAttributesDto
from hsmgate.auth.roles import Role
from hsmgate.cli import cli
from hsmgate.client import AsyncHsmgateClient, HsmgateClient, SignItem, TsbApiError, VerifyItem
from tests.api.test_file_encryption import FILE_KEY, independent_seal
from tests.auth.conftest import API_KEY_SETTINGS, ROLE_KEYS, auth_settings
from tests.domain.ska.helpers import Approver, policy, rule, token
from tests.helpers import LiveServer, free_port

P256 = "1.2.840.10045.3.1.7"
ED25519 = "1.3.101.112"
MANAGEMENT, OPERATION = ROLE_KEYS[Role.KEY_MANAGEMENT][0], ROLE_KEYS[Role.KEY_OPERATION][0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(auth_settings(tmp_path_factory.mktemp("client"), **API_KEY_SETTINGS)) as live:
        yield live


@pytest.fixture()
def admin(server: LiveServer) -> Iterator[HsmgateClient]:
    with HsmgateClient(server.url, api_key=MANAGEMENT) as client:
        yield client


@pytest.fixture()
def operator(server: LiveServer) -> Iterator[HsmgateClient]:
    with HsmgateClient(server.url, api_key=OPERATION) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def public_key(key: SignedKeyAttributesDto) -> Any:
    assert key.json_.publicKey is not None
    return serialization.load_der_public_key(base64.b64decode(key.json_.publicKey))


# -- the client ------------------------------------------------------------------------------------


def test_keys_are_created_listed_described_and_deleted(admin: HsmgateClient) -> None:
    label = unique("client-ec")
    created = admin.create_key(label, "EC", curve_oid=P256)
    assert created.json_.label == label and created.json_.curveOid == P256 and created.json_.attributes.sign
    assert label in admin.list_keys()
    described = admin.describe_key(label)
    assert described.json_.publicKey == created.json_.publicKey
    admin.delete_key(label)
    assert label not in admin.list_keys()
    with pytest.raises(TsbApiError) as refused:
        admin.describe_key(label)
    assert (refused.value.status, refused.value.error_code, refused.value.reason) == (
        404, 650, "res.error.key.not.existent")


@pytest.mark.parametrize("algorithm, size, curve, signature_algorithm", [
    ("EC", None, P256, "SHA256_WITH_ECDSA"), ("ED", None, ED25519, "EDDSA"),
    ("RSA", 2048, None, "SHA256_WITH_RSA_PSS"),
])
def test_signatures_verify_with_cryptography(admin: HsmgateClient, operator: HsmgateClient, algorithm: str,
                                             size: int | None, curve: str | None, signature_algorithm: str) -> None:
    label = unique(f"client-{algorithm.lower()}")
    public = public_key(admin.create_key(label, algorithm, key_size=size, curve_oid=curve))
    payload = b"the payload of " + label.encode()
    signature = operator.sign(label, payload, signature_algorithm)
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, payload)
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, payload, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
                      hashes.SHA256())
    assert operator.verify(label, payload, signature, signature_algorithm) is True
    assert operator.verify(label, payload + b"!", signature, signature_algorithm) is False


def test_batches_answer_per_item(admin: HsmgateClient, operator: HsmgateClient) -> None:
    label = unique("client-batch")
    public = public_key(admin.create_key(label, "ED", curve_oid=ED25519))
    payloads = [f"item {i}".encode() for i in range(5)]
    items = [SignItem(label, payload, "EDDSA") for payload in payloads]
    results = operator.sign_batch([*items[:2], SignItem("no-such-key", b"x", "EDDSA"), *items[2:]])
    assert isinstance(results[2], TsbApiError) and results[2].error_code == 650
    signatures = [result for result in results if isinstance(result, bytes)]
    for payload, signature in zip(payloads, signatures, strict=True):
        public.verify(signature, payload)
    verdicts = operator.verify_batch([VerifyItem(label, payloads[0], signatures[0], "EDDSA"),
                                      VerifyItem(label, payloads[1], signatures[0], "EDDSA")])
    assert verdicts == [True, False]


def test_decrypt_opens_what_cryptography_encrypted(admin: HsmgateClient, operator: HsmgateClient) -> None:
    label = unique("client-rsa-oaep")
    attributes = CreateKeyAttributes(sign=False, decrypt=True, unwrap=False, destroyable=True)
    public = public_key(admin.create_key(label, "RSA", key_size=2048, attributes=attributes))
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    ciphertext = public.encrypt(b"for hsmgate's eyes only", oaep)
    assert operator.decrypt(label, ciphertext, "RSA_PADDING_OAEP_WITH_SHA256") == b"for hsmgate's eyes only"


def test_encrypt_and_decrypt_aes_gcm(admin: HsmgateClient, operator: HsmgateClient) -> None:
    label = unique("client-aes")
    admin.create_key(label, "AES", key_size=256,
                     attributes=CreateKeyAttributes(sign=False, decrypt=True, encrypt=True, unwrap=False))
    sealed = operator.encrypt(label, b"plaintext", "AES_GCM", aad=b"context")
    assert sealed.iv is not None and len(sealed.iv) == 12 and sealed.mac is not None
    assert sealed.ciphertext.endswith(sealed.mac)
    assert operator.decrypt(label, sealed.ciphertext, "AES_GCM", iv=sealed.iv, aad=b"context") == b"plaintext"
    with pytest.raises(TsbApiError) as refused:
        operator.decrypt(label, sealed.ciphertext, "AES_GCM", iv=sealed.iv, aad=b"another context")
    assert refused.value.status == 400 and refused.value.error_code == 410


def test_files_are_encrypted_and_decrypted_as_streams(admin: HsmgateClient, operator: HsmgateClient,
                                                      server: LiveServer) -> None:
    label = unique("client-files")
    public = public_key(admin.create_key(label, "EC", curve_oid="1.3.132.0.34",
                                         attributes=CreateKeyAttributes.model_validate(FILE_KEY)))
    data = os.urandom(3 * 65536 + 11)
    sealed = io.BytesIO()
    assert operator.encrypt_file(label, io.BytesIO(data), sealed, filename="data.bin") == 109 + len(data) + 4 * 16
    opened = io.BytesIO()
    assert operator.decrypt_file(label, io.BytesIO(sealed.getvalue()), opened) == len(data)
    assert opened.getvalue() == data
    built = io.BytesIO()  # a container made with cryptography alone
    operator.decrypt_file(label, io.BytesIO(independent_seal(public, b"independent")), built)
    assert built.getvalue() == b"independent"
    untouched = io.BytesIO()
    with pytest.raises(TsbApiError) as refused:
        operator.decrypt_file(label, io.BytesIO(sealed.getvalue()[:-1]), untouched)
    assert refused.value.error_code == 410 and untouched.getvalue() == b""

    async def asynchronous() -> bytes:
        async with AsyncHsmgateClient(server.url, api_key=OPERATION) as client:
            container, plain = io.BytesIO(), io.BytesIO()
            await client.encrypt_file(label, io.BytesIO(b"async"), container)
            await client.decrypt_file(label, io.BytesIO(container.getvalue()), plain)
            return plain.getvalue()

    assert asyncio.run(asynchronous()) == b"async"


def test_the_wrong_role_is_a_tsb_error(operator: HsmgateClient, server: LiveServer) -> None:
    with pytest.raises(TsbApiError) as refused:
        operator.create_key(unique("client-refused"), "EC", curve_oid=P256)
    assert refused.value.status == 401 and refused.value.error_code is not None and refused.value.reason


def test_ska_requests_are_listed_and_read(admin: HsmgateClient, operator: HsmgateClient, server: LiveServer) -> None:
    label = unique("client-ska")
    approver = Approver("ec")
    admin.create_key(label, "EC", curve_oid=P256, policy=policy(rule(token((1, [approver])))))
    submitted = httpx.post(f"{server.url}/v1/sign", headers={"X-API-KEY": OPERATION}, json={"signRequest": {
        "payload": base64.b64encode(b"approve me").decode(), "signKeyName": label,
        "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
    request_id = submitted.json()["signRequestId"]
    assert request_id in {request.id for request in operator.list_requests(["PENDING"])}
    assert request_id not in {request.id for request in operator.list_requests(["EXECUTED"])}
    status = operator.get_request(request_id)
    assert status.status == "PENDING" and status.notYetApprovedBy == [approver.b64] and status.result is None
    with pytest.raises(TsbApiError) as missing:
        operator.get_request("00000000-0000-0000-0000-000000000000")
    assert missing.value.status == 404


def test_the_async_client(server: LiveServer) -> None:
    async def scenario() -> None:
        async with AsyncHsmgateClient(server.url, api_key=MANAGEMENT) as admin, \
                AsyncHsmgateClient(server.url, api_key=OPERATION) as operator:
            label = unique("client-async")
            public = public_key(await admin.create_key(label, "EC", curve_oid=P256))
            signatures = await asyncio.gather(*(operator.sign(label, f"{i}".encode(), "SHA256_WITH_ECDSA")
                                                for i in range(4)))
            for i, signature in enumerate(signatures):
                public.verify(signature, f"{i}".encode(), ec.ECDSA(hashes.SHA256()))
            assert await operator.verify(label, b"0", signatures[0], "SHA256_WITH_ECDSA")
            assert label in await admin.list_keys()
            await admin.delete_key(label)
            with pytest.raises(TsbApiError) as refused:
                await admin.describe_key(label)
            assert refused.value.error_code == 650

    asyncio.run(scenario())


# -- the commands ----------------------------------------------------------------------------------


def hsmgate(server: LiveServer, api_key: str, *args: str, stdin: str | None = None) -> Any:
    """``hsmgate ARGS`` in process, against ``server`` with the environment's URL and key."""
    return CliRunner().invoke(cli, list(args), input=stdin,
                              env={"HSMGATE_URL": server.url, "HSMGATE_API_KEY": api_key, "COLUMNS": "200"})


def test_key_commands(server: LiveServer, tmp_path: Path) -> None:
    label = unique("cli-key")
    created = hsmgate(server, MANAGEMENT, "key", "create", label, "--algorithm", "EC", "--curve", "P-256")
    assert created.exit_code == 0, created.output
    assert label in created.output and "secp256r1" in created.output
    listed = hsmgate(server, MANAGEMENT, "key", "list", "--json")
    assert label in json.loads(listed.output)
    shown = hsmgate(server, MANAGEMENT, "key", "show", label, "--pem")
    assert isinstance(serialization.load_pem_public_key(shown.output.encode()), ec.EllipticCurvePublicKey)
    deleted = hsmgate(server, MANAGEMENT, "key", "delete", label, "--yes")
    assert deleted.exit_code == 0 and label not in json.loads(hsmgate(server, MANAGEMENT, "key", "list", "--json").output)
    gone = hsmgate(server, MANAGEMENT, "key", "show", label)
    assert gone.exit_code == 2
    assert gone.output.strip().splitlines() == [
        f"hsmgate: {server.url} answered 404: 650 res.error.key.not.existent: key '{label}' not found"]


def test_sign_and_verify_commands(server: LiveServer, tmp_path: Path) -> None:
    label = unique("cli-sign")
    assert hsmgate(server, MANAGEMENT, "key", "create", label, "-a", "EC", "--curve", P256).exit_code == 0
    pem = hsmgate(server, MANAGEMENT, "key", "show", label, "--pem").output
    public = serialization.load_pem_public_key(pem.encode())
    document = tmp_path / "document.txt"
    document.write_bytes(b"sign me, from the command line")
    signed = hsmgate(server, OPERATION, "sign", str(document), "--key", label, "-a", "SHA256_WITH_ECDSA")
    assert signed.exit_code == 0, signed.output
    signature = base64.b64decode(signed.output.strip())
    public.verify(signature, document.read_bytes(), ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg, union-attr]
    signature_file = tmp_path / "document.sig"
    signature_file.write_text(signed.output)
    ok = hsmgate(server, OPERATION, "verify", str(document), "-s", str(signature_file), "--key", label,
                 "-a", "SHA256_WITH_ECDSA")
    assert ok.exit_code == 0 and "valid" in ok.output
    document.write_bytes(b"changed")
    changed = hsmgate(server, OPERATION, "verify", str(document), "-s", str(signature_file), "--key", label,
                      "-a", "SHA256_WITH_ECDSA")
    assert changed.exit_code == 1 and "NOT valid" in changed.output


def test_sign_batch_with_progress(server: LiveServer, tmp_path: Path) -> None:
    label = unique("cli-batch")
    assert hsmgate(server, MANAGEMENT, "key", "create", label, "-a", "ED", "--curve", "Ed25519").exit_code == 0
    public = serialization.load_pem_public_key(hsmgate(server, MANAGEMENT, "key", "show", label, "--pem").output.encode())
    files = []
    for i in range(130):  # two requests: 100 + 30
        path = tmp_path / f"invoice-{i:03d}.xml"
        path.write_bytes(f"<invoice n='{i}'/>".encode())
        files.append(str(path))
    result = hsmgate(server, OPERATION, "sign", *files, "--batch", "--key", label, "-a", "EDDSA")
    assert result.exit_code == 0, result.output
    assert "130 signed, 0 failed" in result.output and "signing" in result.output  # the progress bar
    for name in files:
        public.verify(Path(name + ".sig").read_bytes(), Path(name).read_bytes())  # type: ignore[call-arg, union-attr]


def test_encrypt_and_decrypt_commands(server: LiveServer, tmp_path: Path) -> None:
    label = unique("cli-aes")
    created = hsmgate(server, MANAGEMENT, "key", "create", label, "-a", "AES", "--size", "256", "--decrypt",
                      "--no-sign")
    assert created.exit_code == 0, created.output
    secret = tmp_path / "secret.bin"
    secret.write_bytes(secrets.token_bytes(300))
    envelope = tmp_path / "secret.json"
    sealed = hsmgate(server, OPERATION, "encrypt", str(secret), "--key", label, "-a", "AES_GCM", "-o", str(envelope))
    assert sealed.exit_code == 0, sealed.output
    assert json.loads(envelope.read_text())["cipherAlgorithm"] == "AES_GCM"
    opened = tmp_path / "opened.bin"
    result = hsmgate(server, OPERATION, "decrypt", str(envelope), "-o", str(opened))
    assert result.exit_code == 0, result.output
    assert opened.read_bytes() == secret.read_bytes()


def test_file_commands(server: LiveServer, admin: HsmgateClient, tmp_path: Path) -> None:
    label = unique("cli-files")
    admin.create_key(label, "EC", curve_oid="1.3.132.0.34", attributes=CreateKeyAttributes.model_validate(FILE_KEY))
    report = tmp_path / "report.pdf"
    original = os.urandom(70000)
    report.write_bytes(original)
    sealed = hsmgate(server, OPERATION, "file", "encrypt", str(report), "--key", label)
    assert sealed.exit_code == 0, sealed.output
    container = tmp_path / "report.pdf.encrypted"
    assert container.stat().st_size == 109 + 70000 + 2 * 16
    report.unlink()
    opened = hsmgate(server, OPERATION, "file", "decrypt", str(container), "--key", label)
    assert opened.exit_code == 0, opened.output
    assert report.read_bytes() == original and (report.stat().st_mode & 0o777) == 0o600
    container.write_bytes(container.read_bytes()[:-1])
    damaged = hsmgate(server, OPERATION, "file", "decrypt", str(container), "--key", label, "-o",
                      str(tmp_path / "never"))
    assert damaged.exit_code == 2 and "410" in damaged.output and "Traceback" not in damaged.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.pdf", "report.pdf.encrypted"]
    missing = hsmgate(server, OPERATION, "file", "encrypt", str(tmp_path / "absent"), "--key", label)
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_request_commands(server: LiveServer, admin: HsmgateClient) -> None:
    label = unique("cli-ska")
    admin.create_key(label, "EC", curve_oid=P256, policy=policy(rule(token((1, [Approver("ec")])))))
    request_id = httpx.post(f"{server.url}/v1/sign", headers={"X-API-KEY": OPERATION}, json={"signRequest": {
        "payload": "AA==", "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}}).json()["signRequestId"]
    listed = hsmgate(server, OPERATION, "request", "list", "--status", "PENDING")
    assert listed.exit_code == 0 and request_id in listed.output and "PENDING" in listed.output
    shown = hsmgate(server, OPERATION, "request", "show", request_id, "--json")
    assert json.loads(shown.output)["status"] == "PENDING"


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["key", "list", "--url", url])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hsmgate: cannot reach hsmgate at {url}") and "--url" in lines[0]
