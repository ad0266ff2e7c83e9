"""``GET /v1/key/{keyName}/capabilities`` (hsmgate's own) over HTTP, on the soft token and on a SoftHSM2
token: what it lists is what the operations do. Every signature algorithm and cipher the key's type
takes is tried; a listed one must work (signatures checked with ``cryptography``, ciphers by a round
trip), one left out must be refused with a clean TSB error, never a 500. On SoftHSM2 the known gaps
(deterministic ECDSA, OAEP with SHA-2, ChaCha20, Camellia, DSA 2048, post-quantum keys) are left out
and refused with 603 / 611 / 613."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from tests.helpers import LiveServer, assert_tsb_error, b64, soft_settings, unique
from tests.softhsm import SoftHsmToken

ATTRIBUTES = {"sign": True, "decrypt": True, "unwrap": True, "encrypt": True, "verify": True, "wrap": True,
              "extractable": False, "sensitive": True, "modifiable": True, "destroyable": True}
P256 = "1.2.840.10045.3.1.7"
HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA1": hashes.SHA1(), "SHA224": hashes.SHA224(), "SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(), "SHA3224": hashes.SHA3_224(), "SHA3256": hashes.SHA3_256(),
    "SHA3384": hashes.SHA3_384(), "SHA3512": hashes.SHA3_512()}
#: The signature algorithms of the TSB reference for RSA and EC keys (written out here, not read from hsmgate).
EC_ALGORITHMS = [f"{h}_WITH_ECDSA" for h in HASHES] + [
    "NONE_WITH_ECDSA", "DOUBLE_SHA256_WITH_ECDSA", "SHA256_WITH_ECDSA_DETERMINISTIC",
    *(f"KECCAK{bits}_WITH_ECDSA" for bits in (224, 256, 384, 512))]
SHA2 = ["SHA1", "SHA224", "SHA256", "SHA384", "SHA512"]
RSA_ALGORITHMS = [f"{h}_WITH_RSA" for h in SHA2] + [f"{h}_WITH_RSA_PSS" for h in SHA2] + [
    f"NONE{h}_WITH_RSA" for h in SHA2] + [f"NONE{h}_WITH_RSA_PSS" for h in SHA2[1:]] + [
    "NONE_WITH_RSA", "NONE_WITH_RSA_PSS"]
RSA_CIPHERS = ["RSA", "RSA_PADDING_PKCS", "RSA_PADDING_OAEP", *(f"RSA_PADDING_OAEP_WITH_{h}" for h in SHA2)]
AES_CIPHERS = ["AES_GCM", "AES_CTR", "AES_ECB", "AES_CBC_NO_PADDING", "AES"]


@pytest.fixture(scope="module", params=["soft", pytest.param("pkcs11", marks=pytest.mark.pkcs11)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp(f"capabilities-{request.param}")
    overrides: dict[str, Any] = {}
    if request.param == "pkcs11":
        factory: Callable[[str], SoftHsmToken] = request.getfixturevalue("softhsm_factory")
        token = factory("capabilities")
        overrides = {"backend": "pkcs11", "pkcs11_module": token.module_path,
                     "pkcs11_token_label": token.token_label, "pkcs11_pin": token.pin}
    with LiveServer(soft_settings(directory, **overrides)) as live:
        yield live


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def create(http: httpx.Client, body: dict[str, Any]) -> tuple[str, Any]:
    label = unique("caps")
    response = http.post("/v1/key", json={"label": label, "attributes": ATTRIBUTES, **body})
    assert response.status_code == 201, response.text
    public = response.json()["json"]["publicKey"]
    return label, serialization.load_der_public_key(base64.b64decode(public)) if public else None


def capabilities(http: httpx.Client, label: str) -> dict[str, Any]:
    response = http.get(f"/v1/key/{label}/capabilities")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"label", "backend", "signatureAlgorithms", "cipherAlgorithms", "wrapMethods", "hmac",
                         "decapsulate"} and body["label"] == label
    return body


def payload_for(algorithm: str) -> bytes:
    """A payload ``algorithm`` takes: a digest of the named size for the NONE… forms, else a message."""
    if algorithm.startswith("NONE_WITH"):
        return secrets.token_bytes(32)
    if algorithm.startswith("NONE"):
        return secrets.token_bytes(HASHES[algorithm[4:].split("_")[0]].digest_size)
    return b"what the token can do"


def verify(public: Any, algorithm: str, payload: bytes, signature: bytes) -> None:
    """Raises InvalidSignature unless ``signature`` is right (cryptography, not hsmgate)."""
    name = algorithm.split("_WITH_")[0]
    if name == "NONE" or name.startswith("NONESHA"):
        digest: hashes.HashAlgorithm | utils.Prehashed = utils.Prehashed(
            HASHES[name[4:]] if name != "NONE" else hashes.SHA256())
    elif name == "DOUBLE_SHA256":
        payload, digest = hashes.Hash(hashes.SHA256()), hashes.SHA256()
        payload.update(b"what the token can do")
        payload = payload.finalize()
    elif name.startswith("KECCAK"):
        return  # Keccak (not SHA-3) is not in cryptography; the signature's success is what is checked
    else:
        digest = HASHES[name]
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, payload, ec.ECDSA(digest))
    elif algorithm == "NONE_WITH_RSA":
        assert public.recover_data_from_signature(signature, padding.PKCS1v15(), None) == payload
    elif algorithm.endswith("_PSS"):
        public.verify(signature, payload, padding.PSS(padding.MGF1(
            digest._algorithm if isinstance(digest, utils.Prehashed) else digest), padding.PSS.DIGEST_LENGTH),
            digest)
    else:
        public.verify(signature, payload, padding.PKCS1v15(), digest)


@pytest.mark.parametrize(("body", "algorithms"), [
    ({"algorithm": "EC", "curveOid": P256}, EC_ALGORITHMS),
    ({"algorithm": "RSA", "keySize": 2048}, RSA_ALGORITHMS),
], ids=["ec", "rsa"])
def test_listed_signature_algorithms_are_those_that_sign(http: httpx.Client, body: dict[str, Any],
                                                         algorithms: list[str]) -> None:
    label, public = create(http, body)
    listed = set(capabilities(http, label)["signatureAlgorithms"])
    assert listed <= set(algorithms) and listed
    for algorithm in algorithms:
        payload = payload_for(algorithm)
        response = http.post("/v1/synchronousSign", json={"signRequest": {
            "payload": b64(payload), "signKeyName": label, "signatureAlgorithm": algorithm}})
        if algorithm in listed:
            assert response.status_code == 200, (algorithm, response.text)
            try:
                verify(public, algorithm, payload, base64.b64decode(response.json()["signature"]))
            except InvalidSignature:
                pytest.fail(f"{algorithm}: the signature does not verify")
        else:
            assert response.status_code == 400 and response.json()["errorCode"] in (611, 613), (algorithm,
                                                                                                  response.text)


def round_trip(http: httpx.Client, label: str, cipher: str, payload: bytes) -> httpx.Response | bytes:
    """The decrypted payload, or the first refusal (of encrypt or of decrypt)."""
    encrypted = http.post("/v1/encrypt", json={"encryptRequest": {
        "payload": b64(payload), "encryptKeyName": label, "cipherAlgorithm": cipher}})
    if encrypted.status_code != 200:
        return encrypted
    answer = encrypted.json()
    decrypted = http.post("/v1/synchronousDecrypt", json={"decryptRequest": {
        "encryptedPayload": answer["encryptedPayload"], "decryptKeyName": label, "cipherAlgorithm": cipher,
        "initializationVector": answer.get("initializationVector")}})
    if decrypted.status_code != 200:
        return decrypted
    return base64.b64decode(decrypted.json()["payload"])


@pytest.mark.parametrize(("body", "ciphers"), [
    ({"algorithm": "RSA", "keySize": 2048}, RSA_CIPHERS),
    ({"algorithm": "AES", "keySize": 256}, AES_CIPHERS),
], ids=["rsa", "aes"])
def test_listed_ciphers_are_those_that_round_trip(http: httpx.Client, body: dict[str, Any],
                                                  ciphers: list[str]) -> None:
    label, _ = create(http, body)
    listed = set(capabilities(http, label)["cipherAlgorithms"])
    assert listed <= set(ciphers) | {"RSA_NO_PADDING"} and listed
    payload = secrets.token_bytes(32)
    for cipher in ciphers:
        result = round_trip(http, label, cipher, payload)
        if cipher in listed:
            assert result == payload, (cipher, result)
        else:
            assert isinstance(result, httpx.Response), cipher
            assert result.status_code == 400 and result.json()["errorCode"] in (611, 613, 629), (cipher, result.text)


def test_the_backend_and_the_other_uses_are_named(http: httpx.Client, server: LiveServer) -> None:
    aes, _ = create(http, {"algorithm": "AES", "keySize": 256})
    found = capabilities(http, aes)
    assert found["backend"] == server.settings.backend
    assert {"AES_WRAP", "AES_WRAP_PAD"} <= set(found["wrapMethods"]) and found["signatureAlgorithms"] == []
    assert not found["hmac"] and not found["decapsulate"]
    assert_tsb_error(http.get(f"/v1/key/{unique('missing')}/capabilities"), 650, 404)
    password = unique("pw")
    label = unique("caps-pw")
    assert http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": P256, "password": list(password),
                                      "attributes": ATTRIBUTES}).status_code == 201
    assert_tsb_error(http.get(f"/v1/key/{label}/capabilities"), 620, 400)
    response = http.post("/v1/key/capabilities", json={"label": label, "password": list(password)})
    assert response.status_code == 200 and "SHA256_WITH_ECDSA" in response.json()["signatureAlgorithms"]


def test_the_attributes_answer_is_unchanged(http: httpx.Client) -> None:
    label, _ = create(http, {"algorithm": "EC", "curveOid": P256})
    assert set(http.get(f"/v1/key/{label}/attributes").json()) == {"xml", "json", "xmlSignature",
                                                                   "attestationKeyName"}


@pytest.mark.pkcs11
@pytest.mark.parametrize("server", ["pkcs11"], indirect=True)
def test_softhsm2_gaps_are_left_out_and_refused_cleanly(http: httpx.Client) -> None:
    ec_key, _ = create(http, {"algorithm": "EC", "curveOid": P256})
    assert "SHA256_WITH_ECDSA_DETERMINISTIC" not in capabilities(http, ec_key)["signatureAlgorithms"]
    rsa_key, _ = create(http, {"algorithm": "RSA", "keySize": 2048})
    found = capabilities(http, rsa_key)
    assert "RSA_PADDING_OAEP_WITH_SHA256" not in found["cipherAlgorithms"]
    assert "RSA_PADDING_OAEP_WITH_SHA1" in found["cipherAlgorithms"]
    for body, codes in (({"algorithm": "ChaCha20", "keySize": 256}, (603, 611, 613)),
                        ({"algorithm": "Camellia", "keySize": 256}, (603, 611, 613)),
                        ({"algorithm": "DSA", "keySize": 2048}, (603, 611, 613)),
                        ({"algorithm": "ML-DSA-65"}, (603, 611, 613)),
                        ({"algorithm": "ML-KEM-768"}, (603, 611, 613))):
        response = http.post("/v1/key", json={"label": unique("gap"), "attributes": ATTRIBUTES, **body})
        assert response.status_code == 400 and response.json()["errorCode"] in codes, (body, response.text)
