"""The PKCS#11 backend end to end over HTTP, on a throwaway SoftHSM2 token.

Interoperability both ways: keys made by ``pkcs11-tool`` sign through ``/v1/synchronousSign`` and the
OpenSSL CLI verifies the signatures; keys made through hsmgate are listed by ``pkcs11-tool`` under
their label with the attributes that were asked for. Start-up failures are one line, and a token
that disappears gives 5xx TSB errors until it is back.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hsmgate.hsm.pkcs11.partition import REINIT_INTERVAL
from tests.helpers import LiveServer, assert_tsb_error, free_port, soft_settings, unique
from tests.softhsm import SoftHsmToken, token_directory

pytestmark = pytest.mark.pkcs11

RSA_ATTRS = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
             "modifiable": True, "destroyable": True}


@pytest.fixture(scope="module")
def token(softhsm_factory: Callable[[str], SoftHsmToken]) -> SoftHsmToken:
    return softhsm_factory("e2e-http")


@pytest.fixture(scope="module")
def server(token: SoftHsmToken, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = soft_settings(tmp_path_factory.mktemp("pkcs11-http"), backend="pkcs11",
                             pkcs11_module=token.module_path, pkcs11_token_label=token.token_label,
                             pkcs11_pin=token.pin)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture()
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def pkcs11_tool(token: SoftHsmToken, *args: str) -> str:
    env = {**os.environ, "SOFTHSM2_CONF": token.conf_path}
    result = subprocess.run(["pkcs11-tool", "--module", token.module_path, "--token-label", token.token_label,
                             "--login", "--pin", token.pin, *args],
                            capture_output=True, text=True, env=env, timeout=60, check=True)
    return result.stdout + result.stderr


def openssl_verify(tmp: Path, spki_b64: str, digest: str, payload: bytes, signature: bytes,
                   *sigopts: str) -> str:
    (tmp / "pub.der").write_bytes(base64.b64decode(spki_b64))
    subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", str(tmp / "pub.der"),
                    "-out", str(tmp / "pub.pem")], check=True, capture_output=True)
    (tmp / "data").write_bytes(payload)
    (tmp / "sig").write_bytes(signature)
    options = [arg for opt in sigopts for arg in ("-sigopt", opt)]
    result = subprocess.run(["openssl", "dgst", f"-{digest}", *options, "-verify", str(tmp / "pub.pem"),
                             "-signature", str(tmp / "sig"), str(tmp / "data")], capture_output=True, text=True)
    return result.stdout.strip()


def sign(http: httpx.Client, label: str, algorithm: str, payload: bytes) -> bytes:
    response = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": base64.b64encode(payload).decode(), "signKeyName": label, "signatureAlgorithm": algorithm}})
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["signature"])


def public_key(http: httpx.Client, label: str) -> str:
    response = http.post("/v1/key/attributes", json={"label": label})
    assert response.status_code == 200, response.text
    return response.json()["json"]["publicKey"]


@pytest.mark.subprocess
def test_seed_walkthrough_on_the_token(http: httpx.Client, token: SoftHsmToken, tmp_path: Path) -> None:
    label = unique("seed-p11")
    created = http.post("/v1/key", json={"label": label, "algorithm": "RSA", "keySize": 2048,
                                         "attributes": RSA_ATTRS})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["json"]["attributes"]["neverExtractable"] is True
    assert body["json"]["attributes"]["alwaysSensitive"] is True
    signature = sign(http, label, "SHA224_WITH_RSA_PSS", b"Payload")
    assert openssl_verify(tmp_path, body["json"]["publicKey"], "sha224", b"Payload", signature,
                          "rsa_padding_mode:pss", "rsa_pss_saltlen:28", "rsa_mgf1_md:sha224") == "Verified OK"
    attestation = public_key(http, "attestation-key")
    assert openssl_verify(tmp_path, attestation, "sha256", body["xml"].encode(),
                          base64.b64decode(body["xmlSignature"])) == "Verified OK"
    # the attestation key lives on the token, next to the new key
    objects = pkcs11_tool(token, "--list-objects")
    assert "label:      attestation-key" in objects and f"label:      {label}" in objects


@pytest.mark.parametrize(("key_type", "algorithm", "digest"), [
    ("rsa:2048", "SHA256_WITH_RSA", "sha256"),
    ("EC:prime256v1", "SHA256_WITH_ECDSA", "sha256"),
    ("EC:secp384r1", "SHA384_WITH_ECDSA", "sha384"),
])
@pytest.mark.subprocess
def test_keys_made_by_pkcs11_tool_sign_through_hsmgate(http: httpx.Client, token: SoftHsmToken, tmp_path: Path,
                                                       key_type: str, algorithm: str, digest: str) -> None:
    label = unique("ext")
    pkcs11_tool(token, "--keypairgen", "--key-type", key_type, "--label", label, "--id", os.urandom(4).hex())
    assert label in http.get("/v1/key").json()
    payload = b"signed by a key hsmgate did not create"
    signature = sign(http, label, algorithm, payload)
    assert openssl_verify(tmp_path, public_key(http, label), digest, payload, signature) == "Verified OK"


@pytest.mark.subprocess
def test_keys_made_by_hsmgate_are_listed_by_pkcs11_tool_with_their_attributes(http: httpx.Client,
                                                                            token: SoftHsmToken) -> None:
    ec_label, aes_label = unique("mine-ec"), unique("mine-aes")
    assert http.post("/v1/key", json={"label": ec_label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                      "attributes": RSA_ATTRS}).status_code == 201
    assert http.post("/v1/key", json={"label": aes_label, "algorithm": "AES", "keySize": 256, "attributes": {
        "decrypt": True, "sign": False, "unwrap": False, "extractable": False, "sensitive": True,
        "destroyable": True}}).status_code == 201
    objects = pkcs11_tool(token, "--list-objects")
    blocks = [(block.split("label:", 1)[1].split("\n", 1)[0].strip(), block)
              for block in re.split(r"\n(?=\S)", objects) if "label:" in block]
    private = next(b for name, b in blocks if name == ec_label and "Private Key Object" in b)
    assert "never extractable" in private and "sensitive" in private and "sign" in private.split("Usage:")[1]
    secret = next(b for name, b in blocks if name == aes_label)
    assert "Secret Key Object; AES" in secret and "never extractable" in secret


def test_token_disappearing_gives_503_and_recovers(server: LiveServer, http: httpx.Client,
                                                   token: SoftHsmToken, tmp_path: Path) -> None:
    label = unique("outage")
    assert http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                      "attributes": RSA_ATTRS}).status_code == 201
    directory = token_directory(token)
    parked = tmp_path / "parked-token"
    shutil.move(str(directory), parked)
    try:
        response = http.post("/v1/synchronousSign", json={"signRequest": {
            "payload": "AA==", "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
        assert response.status_code >= 500, response.text
        assert response.json()["errorCode"] == 701
        assert set(response.json()) == {"errorCode", "reason", "message"}
    finally:
        shutil.move(str(parked), directory)
    # the module is re-initialised at most once per REINIT_INTERVAL: the token is usable again
    # within that (and answers 503 / 701 until then, never anything else)
    deadline = time.monotonic() + REINIT_INTERVAL + 5
    while True:
        response = http.post("/v1/synchronousSign", json={"signRequest": {
            "payload": "AA==", "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
        if response.status_code == 200:
            break
        assert_tsb_error(response, 701, 503)
        assert time.monotonic() < deadline, "the token did not come back"
        time.sleep(0.1)
    sign(http, label, "SHA256_WITH_ECDSA", b"back again")


def _serve(env_overrides: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
    env.update({"HSMGATE_DATA_DIR": str(tmp_path / "data"), "HSMGATE_BACKEND": "pkcs11",
                "HSMGATE_PORT": str(free_port()), **env_overrides})
    return subprocess.run([sys.executable, "-m", "hsmgate", "serve", "--dev"], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.subprocess
@pytest.mark.parametrize("case", ["wrong-pin", "missing-module", "absent-token"])
def test_startup_failures_are_one_line(case: str, token: SoftHsmToken, tmp_path: Path) -> None:
    env = {"HSMGATE_PKCS11_MODULE": token.module_path, "HSMGATE_PKCS11_TOKEN_LABEL": token.token_label,
           "HSMGATE_PKCS11_PIN": "9876", "SOFTHSM2_CONF": token.conf_path}
    if case == "missing-module":
        env |= {"HSMGATE_PKCS11_MODULE": "/nonexistent/libpkcs11.so", "HSMGATE_PKCS11_PIN": token.pin}
    elif case == "absent-token":
        env |= {"HSMGATE_PKCS11_TOKEN_LABEL": "no-such-token", "HSMGATE_PKCS11_PIN": token.pin}
    result = _serve(env, tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hsmgate:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr and "9876" not in result.stderr


def test_derivation_is_not_supported_by_pkcs11(http: httpx.Client) -> None:
    """PKCS#11 has no standard BIP-32 / SLIP-0010 mechanism: the backend declares no derivation, so
    masters, seed imports and derived key names are 613 before any token call."""
    attributes = {"sign": True, "decrypt": False, "unwrap": False, "derive": True, "bip32": True}
    for response in (
        http.post("/v1/key", json={"label": unique("p11-master"), "algorithm": "EC", "curveOid": "1.3.132.0.10",
                                   "attributes": attributes}),
        http.post("/v1/importedKey", json={"label": unique("p11-seed"), "seed": base64.b64encode(bytes(32)).decode(),
                                           "curveOid": "1.3.132.0.10", "attributes": attributes}),
    ):
        assert response.status_code == 400 and response.json()["errorCode"] == 613, response.text
    label = unique("p11-plain")
    assert http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                      "attributes": {"sign": True, "decrypt": False, "unwrap": False}}).status_code == 201
    signed = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": "AA==", "signKeyName": f"{label}/0", "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
    assert signed.status_code == 400 and signed.json()["errorCode"] == 613, signed.text
