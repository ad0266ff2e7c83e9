"""Post-quantum keys end to end over real HTTP (the session's live soft server).

Every parameter set is created through ``POST /v1/key``; every signature made through
``/v1/synchronousSign`` is checked by an implementation other than the one that made it:
ML-DSA (made by ``cryptography``) with ``pqcrypto``; SLH-DSA (made by ``pqcrypto``) with
``pqcrypto`` *and* the independent FIPS 205 verifier in ``slhdsa_ref.py``. ML-KEM secrets are
encapsulated by ``cryptography`` / ``pqcrypto`` against the returned public key and decapsulated by
hsmgate, and the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem
from pqcrypto import HashAlgorithm, InvalidSignatureError

from hsmgate.domain.algorithms import PREHASH_WIRE_NAMES
from hsmgate.hsm.base import PreHash
from tests.helpers import unique
from tests.hsm import slhdsa_ref
from tests.hsm.test_softpq import parse_spki

OIDS = {
    "ML-DSA-44": "2.16.840.1.101.3.4.3.17", "ML-DSA-65": "2.16.840.1.101.3.4.3.18",
    "ML-DSA-87": "2.16.840.1.101.3.4.3.19",
    **{f"SLH-DSA-{h}-{n}{v}": f"2.16.840.1.101.3.4.3.{20 + i}" for i, (h, n, v) in enumerate(
        (h, n, v) for h in ("SHA2", "SHAKE") for n in (128, 192, 256) for v in "sf")},
    "ML-KEM-512": "2.16.840.1.101.3.4.4.1", "ML-KEM-768": "2.16.840.1.101.3.4.4.2",
    "ML-KEM-1024": "2.16.840.1.101.3.4.4.3",
}
# reference §5.1 (ML-DSA, SLH-DSA *f) and FIPS 205 Table 2 (SLH-DSA *s)
SIGNATURE_SIZES = {
    "ML-DSA-44": 2420, "ML-DSA-65": 3309, "ML-DSA-87": 4627,
    **{f"SLH-DSA-{h}-{n}f": s for h in ("SHA2", "SHAKE") for n, s in ((128, 17088), (192, 35664), (256, 49856))},
    **{f"SLH-DSA-{h}-{n}s": s for h in ("SHA2", "SHAKE") for n, s in ((128, 7856), (192, 16224), (256, 29792))},
}
ML_DSA = ["ML-DSA-44", "ML-DSA-65", "ML-DSA-87"]
SLH_DSA = [name for name in OIDS if name.startswith("SLH-DSA-")]
ML_KEM = ["ML-KEM-512", "ML-KEM-768", "ML-KEM-1024"]
PQCRYPTO_HASH = {
    PreHash.SHA224: HashAlgorithm.Sha224, PreHash.SHA256: HashAlgorithm.Sha256,
    PreHash.SHA384: HashAlgorithm.Sha384, PreHash.SHA512: HashAlgorithm.Sha512,
    PreHash.SHA3_224: HashAlgorithm.Sha3_224, PreHash.SHA3_256: HashAlgorithm.Sha3_256,
    PreHash.SHA3_384: HashAlgorithm.Sha3_384, PreHash.SHA3_512: HashAlgorithm.Sha3_512,
    PreHash.SHAKE128: HashAlgorithm.Shake128, PreHash.SHAKE256: HashAlgorithm.Shake256,
}
ATTRIBUTES = {"sign": True, "decrypt": True, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def module_for(algorithm: str) -> Any:
    package = "pqcrypto.kem" if algorithm.startswith("ML-KEM") else "pqcrypto.sign"
    return importlib.import_module(f"{package}.{algorithm.lower().replace('-', '_')}")


@pytest.fixture(scope="module")
def keys(http: httpx.Client) -> dict[str, dict[str, Any]]:
    """One key per parameter set: the ``json`` part of the creation answer plus the raw public key."""
    created: dict[str, dict[str, Any]] = {}
    for algorithm in OIDS:
        response = http.post("/v1/key", json={"label": unique("pqc"), "algorithm": algorithm,
                                              "attributes": ATTRIBUTES})
        assert response.status_code == 201, response.text
        body = response.json()
        oid, parameters, raw = parse_spki(base64.b64decode(body["json"]["publicKey"]))
        created[algorithm] = {**body["json"], "xml": body["xml"], "raw": raw, "oid": oid, "parameters": parameters}
    return created


def sign(http: httpx.Client, label: str, algorithm: str, payload: bytes, context: bytes | None = None) -> bytes:
    request: dict[str, Any] = {"payload": b64(payload), "signKeyName": label, "signatureAlgorithm": algorithm}
    if context is not None:
        request["context"] = b64(context)
    response = http.post("/v1/synchronousSign", json={"signRequest": request})
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["signature"])


def verify(http: httpx.Client, label: str, algorithm: str, payload: bytes, signature: bytes,
           context: bytes | None = None) -> bool:
    request: dict[str, Any] = {"payload": b64(payload), "signKeyName": label, "signatureAlgorithm": algorithm,
                               "signature": b64(signature)}
    if context is not None:
        request["context"] = b64(context)
    response = http.post("/v1/verify", json={"verifySignatureRequest": request})
    assert response.status_code == 200, response.text
    return bool(response.json()["signatureValid"])


def error(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["errorCode"]


# -- keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(OIDS))
def test_key_json_xml_and_spki(keys: dict[str, dict[str, Any]], algorithm: str) -> None:
    key = keys[algorithm]
    assert key["algorithm"] == algorithm and key["algorithmOid"] == OIDS[algorithm]
    assert key["keySize"] is None and key["curveOid"] is None
    assert key["oid"] == OIDS[algorithm] and key["parameters"] is None
    assert len(key["raw"]) == module_for(algorithm).PUBLIC_KEY_SIZE
    assert f"\t<algorithm>{algorithm}</algorithm>\n\t<algorithm_oid>{OIDS[algorithm]}</algorithm_oid>\n" in key["xml"]
    assert key["xml"].startswith('<?xml version="1.0" encoding="UTF-8"?>\n<private_key creation="generated">')
    assert key["attributes"]["neverExtractable"] is True


def test_creation_by_oid_and_ignored_key_size(http: httpx.Client) -> None:
    response = http.post("/v1/key", json={"label": unique("pqc-oid"), "algorithmOid": "2.16.840.1.101.3.4.3.19",
                                          "keySize": 2048, "attributes": ATTRIBUTES})
    assert response.status_code == 201, response.text
    assert response.json()["json"]["algorithm"] == "ML-DSA-87" and response.json()["json"]["keySize"] is None


@pytest.mark.parametrize("algorithm", ["XMSS-SHA256_10_256", "XMSS-SHAKE256_10_256", "DILITHIUM_L3",
                                       "SPHINCS_PLUS_SHAKE_L1", "KYBER768_WITH_SHAKE"])
def test_unsupported_pq_key_algorithms_are_refused_with_613(http: httpx.Client, algorithm: str) -> None:
    response = http.post("/v1/key", json={"label": unique("pqc-no"), "algorithm": algorithm, "attributes": ATTRIBUTES})
    assert error(response) == (400, 613)


@pytest.mark.parametrize("algorithm", ["XMSS-SHA256_10_256", "XMSS-SHAKE256_10_256", "KYBER"])
def test_unsupported_pq_signature_algorithms_are_refused_with_611(
        http: httpx.Client, keys: dict[str, dict[str, Any]], algorithm: str) -> None:
    response = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(b"x"), "signKeyName": keys["ML-DSA-44"]["label"], "signatureAlgorithm": algorithm}})
    assert error(response) == (400, 611)


# -- ML-DSA ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ML_DSA)
def test_ml_dsa_both_generations_with_context(http: httpx.Client, keys: dict[str, dict[str, Any]],
                                              algorithm: str) -> None:
    key, module = keys[algorithm], module_for(algorithm)
    for name, context in (("ML_DSA", b"hsmgate-context"), ("ML_DSA", None), ("DILITHIUM", b"\x00\x01")):
        signature = sign(http, key["label"], name, b"payload", context)
        assert len(signature) == SIGNATURE_SIZES[algorithm]
        module.verify(key["raw"], b"payload", signature, context=context)  # pqcrypto, not cryptography
        with pytest.raises(InvalidSignatureError):
            module.verify(key["raw"], b"payload", signature, context=b"wrong")
        assert verify(http, key["label"], name, b"payload", signature, context)
        assert not verify(http, key["label"], name, b"pay1oad", signature, context)
        assert not verify(http, key["label"], name, b"payload", signature, b"other context")
    # a pqcrypto signature made with the same key cannot exist (the key never leaves hsmgate), but
    # the reverse direction is covered with pqcrypto keys in test_softpq.py


@pytest.mark.parametrize("wire_name", list(PREHASH_WIRE_NAMES))
def test_hash_ml_dsa(http: httpx.Client, keys: dict[str, dict[str, Any]], wire_name: str) -> None:
    key, module = keys["ML-DSA-44"], module_for("ML-DSA-44")
    prehash = PREHASH_WIRE_NAMES[wire_name]
    algorithm = f"{wire_name}_WITH_ML_DSA"
    signature = sign(http, key["label"], algorithm, b"message to pre-hash", b"ctx")
    assert len(signature) == SIGNATURE_SIZES["ML-DSA-44"]
    digest = slhdsa_ref.prehash(prehash.value, b"message to pre-hash")  # pqcrypto's HashML-DSA takes PH(M)
    module.verify(key["raw"], digest, signature, context=b"ctx", hash_algorithm=PQCRYPTO_HASH[prehash])
    assert verify(http, key["label"], algorithm, b"message to pre-hash", signature, b"ctx")
    assert not verify(http, key["label"], "ML_DSA", b"message to pre-hash", signature, b"ctx")


def test_ml_dsa_m_signs_an_external_mu(http: httpx.Client, keys: dict[str, dict[str, Any]]) -> None:
    key, module = keys["ML-DSA-65"], module_for("ML-DSA-65")
    context, message = b"ctx", b"large document, hashed by the client"
    tr = hashlib.shake_256(key["raw"]).digest(64)
    mu = hashlib.shake_256(tr + b"\x00" + bytes([len(context)]) + context + message).digest(64)
    signature = sign(http, key["label"], "ML_DSA_M", mu)
    module.verify(key["raw"], message, signature, context=context)  # a plain ML-DSA signature of the message
    assert verify(http, key["label"], "ML_DSA_M", mu, signature)
    assert verify(http, key["label"], "ML_DSA", message, signature, context)
    short = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(mu[:32]), "signKeyName": key["label"], "signatureAlgorithm": "ML_DSA_M"}})
    assert error(short) == (400, 612)
    with_context = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(mu), "signKeyName": key["label"], "signatureAlgorithm": "ML_DSA_M", "context": b64(b"c")}})
    assert error(with_context) == (400, 600) and "'context'" in with_context.json()["message"]


# -- SLH-DSA ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [  # the small-signature ("s") sets sign in seconds: slow
    pytest.param(name, marks=pytest.mark.slow) if name.endswith("s") else name for name in SLH_DSA])
def test_slh_dsa_every_set(http: httpx.Client, keys: dict[str, dict[str, Any]], algorithm: str) -> None:
    """f sets: both names, with and without context; s sets (0.3–2 s per signature): one signature."""
    key, module = keys[algorithm], module_for(algorithm)
    cases = [("SLH_DSA", b"hsmgate")] if algorithm.endswith("s") else \
        [("SLH_DSA", b"hsmgate"), ("SPHINCS_PLUS", None)]
    for name, context in cases:
        signature = sign(http, key["label"], name, b"payload", context)
        assert len(signature) == SIGNATURE_SIZES[algorithm]
        module.verify(key["raw"], b"payload", signature, context=context)
        assert slhdsa_ref.verify(algorithm, key["raw"], b"payload", signature, context or b"")
        assert not slhdsa_ref.verify(algorithm, key["raw"], b"payload", signature, b"other")
        assert verify(http, key["label"], name, b"payload", signature, context)
        assert not verify(http, key["label"], name, b"Payload", signature, context)


@pytest.mark.parametrize("wire_name", list(PREHASH_WIRE_NAMES))
def test_hash_slh_dsa(http: httpx.Client, keys: dict[str, dict[str, Any]], wire_name: str) -> None:
    algorithm = "SLH-DSA-SHAKE-128f" if wire_name.startswith("SHAKE") else "SLH-DSA-SHA2-128f"
    key, prehash = keys[algorithm], PREHASH_WIRE_NAMES[wire_name]
    name = f"{wire_name}_WITH_SLH_DSA"
    signature = sign(http, key["label"], name, b"message", b"ctx")
    assert slhdsa_ref.verify(algorithm, key["raw"], b"message", signature, b"ctx", prehash.value)
    module_for(algorithm).verify(key["raw"], b"message", signature, context=b"ctx",
                                 hash_algorithm=PQCRYPTO_HASH[prehash])
    assert verify(http, key["label"], name, b"message", signature, b"ctx")
    assert not verify(http, key["label"], "SLH_DSA", b"message", signature, b"ctx")


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key_algorithm", "signature_algorithm"), [
    ("ML-DSA-44", "SLH_DSA"), ("ML-DSA-44", "SPHINCS_PLUS"), ("ML-DSA-44", "SHA256_WITH_RSA"),
    ("SLH-DSA-SHA2-128f", "ML_DSA"), ("SLH-DSA-SHA2-128f", "DILITHIUM"), ("SLH-DSA-SHA2-128f", "ML_DSA_M"),
    ("SLH-DSA-SHA2-128f", "SHA2_256_WITH_ML_DSA"), ("ML-KEM-768", "ML_DSA"), ("ML-KEM-512", "SLH_DSA"),
])
def test_key_algorithm_mismatch_is_607(http: httpx.Client, keys: dict[str, dict[str, Any]],
                                       key_algorithm: str, signature_algorithm: str) -> None:
    payload = b64(bytes(64))
    response = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": payload, "signKeyName": keys[key_algorithm]["label"], "signatureAlgorithm": signature_algorithm}})
    assert error(response) == (400, 607)
    response = http.post("/v1/verify", json={"verifySignatureRequest": {
        "payload": payload, "signKeyName": keys[key_algorithm]["label"], "signatureAlgorithm": signature_algorithm,
        "signature": payload}})
    assert error(response) == (400, 607)


def test_classical_keys_refuse_context_with_600(http: httpx.Client) -> None:
    label = unique("rsa-ctx")
    created = http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                         "attributes": ATTRIBUTES})
    assert created.status_code == 201, created.text
    response = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(b"x"), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA", "context": b64(b"c")}})
    assert error(response) == (400, 600) and "'context'" in response.json()["message"]
    signature = sign(http, label, "SHA256_WITH_ECDSA", b"x")
    response = http.post("/v1/verify", json={"verifySignatureRequest": {
        "payload": b64(b"x"), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA",
        "signature": b64(signature), "context": b64(b"c")}})
    assert error(response) == (400, 600)


def test_context_over_255_bytes_is_600(http: httpx.Client, keys: dict[str, dict[str, Any]]) -> None:
    label = keys["ML-DSA-44"]["label"]
    sign(http, label, "ML_DSA", b"x", b"c" * 255)
    response = http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(b"x"), "signKeyName": label, "signatureAlgorithm": "ML_DSA", "context": b64(b"c" * 256)}})
    assert error(response) == (400, 600) and "'context'" in response.json()["message"]


# -- ML-KEM ----------------------------------------------------------------------------------------


def decapsulate(http: httpx.Client, label: str, ciphertext: bytes) -> httpx.Response:
    return http.post("/v1/synchronousDecapsulate", json={"decapsulationRequest": {
        "decapsulationKeyName": label, "ciphertext": b64(ciphertext)}})


@pytest.mark.parametrize("algorithm", ML_KEM)
def test_encapsulate_then_decapsulate(http: httpx.Client, keys: dict[str, dict[str, Any]], algorithm: str) -> None:
    key = keys[algorithm]
    for body in ({"publicKey": key["publicKey"]}, {"keyName": key["label"]}):
        response = http.post("/v1/encapsulate", json=body)
        assert response.status_code == 200, response.text
        ciphertext = base64.b64decode(response.json()["ciphertext"])
        shared = base64.b64decode(response.json()["sharedSecret"])
        assert len(ciphertext) == module_for(algorithm).CIPHERTEXT_SIZE and len(shared) == 32
        answer = decapsulate(http, key["label"], ciphertext)
        assert answer.status_code == 200, answer.text
        assert base64.b64decode(answer.json()["sharedSecret"]) == shared


@pytest.mark.parametrize("algorithm", ML_KEM)
def test_independent_encapsulation_decapsulates_in_hsmgate(
        http: httpx.Client, keys: dict[str, dict[str, Any]], algorithm: str) -> None:
    key = keys[algorithm]
    ciphertext, shared = module_for(algorithm).encaps(key["raw"])  # pqcrypto: (ciphertext, secret)
    assert base64.b64decode(decapsulate(http, key["label"], ciphertext).json()["sharedSecret"]) == shared
    if algorithm != "ML-KEM-512":  # cryptography (OpenSSL) loads the returned SPKI itself
        public = serialization.load_der_public_key(base64.b64decode(key["publicKey"]))
        assert isinstance(public, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey)
        shared, ciphertext = public.encapsulate()  # cryptography: (secret, ciphertext)
        assert base64.b64decode(decapsulate(http, key["label"], ciphertext).json()["sharedSecret"]) == shared


def test_kem_refusals(http: httpx.Client, keys: dict[str, dict[str, Any]]) -> None:
    kem = keys["ML-KEM-768"]
    assert error(decapsulate(http, kem["label"], bytes(100))) == (400, 612)  # wrong ciphertext length
    assert error(decapsulate(http, keys["ML-DSA-44"]["label"], bytes(1088))) == (400, 607)
    assert error(decapsulate(http, "no-such-key", bytes(1088))) == (404, 650)
    assert error(http.post("/v1/encapsulate", json={"keyName": keys["ML-DSA-44"]["label"]})) == (400, 607)
    assert error(http.post("/v1/encapsulate", json={"publicKey": keys["ML-DSA-44"]["publicKey"]})) == (400, 613)
    assert error(http.post("/v1/encapsulate", json={"publicKey": b64(b"not a key")})) == (400, 600)
    assert error(http.post("/v1/encapsulate", json={})) == (400, 600)
    # a key with none of decrypt, derive, unwrap may not decapsulate
    label = unique("kem-sign-only")
    created = http.post("/v1/key", json={"label": label, "algorithm": "ML-KEM-512", "attributes": {
        "sign": True, "decrypt": False, "unwrap": False, "derive": False}})
    assert created.status_code == 201, created.text
    ciphertext, _ = module_for("ML-KEM-512").encaps(parse_spki(base64.b64decode(created.json()["json"]["publicKey"]))[2])
    refused = decapsulate(http, label, ciphertext)
    assert error(refused) == (400, 701) and "KEY_FUNCTION_NOT_PERMITTED" in refused.json()["message"]


@pytest.mark.parametrize("algorithm", ML_KEM)
def test_decapsulation_with_the_go_clients_own_key_attributes(http: httpx.Client, algorithm: str) -> None:
    """The TSB's Go client creates its ML-KEM keys with ``unwrap`` and ``wrap`` but not ``decrypt``
    (``testPostQuantumWrapKeyAttributes``) and decapsulates with them: ``unwrap`` permits it."""
    label = unique("kem-go-client")
    created = http.post("/v1/key", json={"label": label, "algorithm": algorithm, "attributes": {
        "decrypt": False, "encrypt": False, "destroyable": True, "extractable": True, "sign": False,
        "unwrap": True, "verify": False, "wrap": True}, "policy": None})
    assert created.status_code == 201, created.text
    raw = parse_spki(base64.b64decode(created.json()["json"]["publicKey"]))[2]
    ciphertext, shared = module_for(algorithm).encaps(raw)  # pqcrypto: an independent encapsulation
    answer = decapsulate(http, label, ciphertext)
    assert answer.status_code == 200, answer.text
    assert base64.b64decode(answer.json()["sharedSecret"]) == shared


def test_ml_kem_routes_are_documented(http: httpx.Client) -> None:
    paths = http.get("/v3/api-docs").json()["paths"]
    assert "/v1/encapsulate" in paths and "/v1/synchronousDecapsulate" in paths


# -- ML-KEM as wrapMethod (/v1/wrap, /v1/synchronousUnwrap) -----------------------------------------


def test_ml_kem_wrap_method_round_trip_and_blob_format(http: httpx.Client) -> None:
    """wrappedKey = ML-KEM ciphertext ‖ AES-KWP(shared secret, key): opened here by decapsulating the
    ciphertext through the API and unwrapping with ``cryptography`` (RFC 5649)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

    kek = unique("kem-kek")
    created = http.post("/v1/key", json={"label": kek, "algorithm": "ML-KEM-768", "attributes": {
        "sign": False, "decrypt": True, "unwrap": True, "wrap": True}})
    assert created.status_code == 201, created.text
    aes = unique("kem-aes")
    created = http.post("/v1/key", json={"label": aes, "algorithm": "AES", "keySize": 256, "attributes": {
        "sign": False, "decrypt": True, "encrypt": True, "unwrap": False, "extractable": True}})
    assert created.status_code == 201, created.text
    wrapped = http.post("/v1/wrap", json={"wrapKeyRequest": {
        "keyToBeWrapped": aes, "wrapKeyName": kek, "wrapMethod": "ML-KEM-768"}})
    assert wrapped.status_code == 200, wrapped.text
    blob = base64.b64decode(wrapped.json()["wrappedKey"])
    assert len(blob) == 1088 + 40
    shared = base64.b64decode(decapsulate(http, kek, blob[:1088]).json()["sharedSecret"])
    raw_key = aes_key_unwrap_with_padding(shared, blob[1088:])
    encrypted = http.post("/v1/encrypt", json={"encryptRequest": {
        "payload": b64(b"sixteen byte msg"), "encryptKeyName": aes, "cipherAlgorithm": "AES_GCM", "tagLength": 128}})
    assert encrypted.status_code == 200, encrypted.text
    body = encrypted.json()
    assert AESGCM(raw_key).decrypt(base64.b64decode(body["initializationVector"]),
                                   base64.b64decode(body["encryptedPayload"]), None) == b"sixteen byte msg"
    copy = unique("kem-aes-copy")
    unwrapped = http.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
        "wrappedKey": b64(blob), "label": copy, "unwrapKeyName": kek, "wrapMethod": "ML-KEM-768",
        "attributes": {"sign": False, "decrypt": True, "unwrap": False}}})
    assert unwrapped.status_code == 201, unwrapped.text
    assert unwrapped.json()["json"]["algorithm"] == "AES"
    decrypted = http.post("/v1/synchronousDecrypt", json={"decryptRequest": {
        "encryptedPayload": body["encryptedPayload"], "decryptKeyName": copy, "cipherAlgorithm": "AES_GCM",
        "initializationVector": body["initializationVector"], "tagLength": 128}})
    assert decrypted.status_code == 200, decrypted.text
    assert base64.b64decode(decrypted.json()["payload"]) == b"sixteen byte msg"
    # the wrap method must match the ML-KEM key's parameter set
    mismatch = http.post("/v1/wrap", json={"wrapKeyRequest": {
        "keyToBeWrapped": aes, "wrapKeyName": kek, "wrapMethod": "ML-KEM-512"}})
    assert error(mismatch) == (400, 607)


def test_ml_kem_wraps_a_post_quantum_key(http: httpx.Client) -> None:
    kek = unique("kem-kek")
    assert http.post("/v1/key", json={"label": kek, "algorithm": "ML-KEM-1024", "attributes": {
        "sign": False, "decrypt": False, "unwrap": True, "wrap": True}}).status_code == 201
    signer = unique("kem-mldsa")
    created = http.post("/v1/key", json={"label": signer, "algorithm": "ML-DSA-44", "attributes": {
        "sign": True, "decrypt": False, "unwrap": False, "extractable": True}})
    assert created.status_code == 201, created.text
    wrapped = http.post("/v1/wrap", json={"wrapKeyRequest": {
        "keyToBeWrapped": signer, "wrapKeyName": kek, "wrapMethod": "ML-KEM-1024"}})
    assert wrapped.status_code == 200, wrapped.text
    copy = unique("kem-mldsa-copy")
    unwrapped = http.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
        "wrappedKey": wrapped.json()["wrappedKey"], "label": copy, "unwrapKeyName": kek,
        "wrapMethod": "ML-KEM-1024", "algorithm": "ML-DSA-44",
        "attributes": {"sign": True, "decrypt": False, "unwrap": False}}})
    assert unwrapped.status_code == 201, unwrapped.text
    assert unwrapped.json()["json"]["publicKey"] == created.json()["json"]["publicKey"]
    assert unwrapped.json()["json"]["attributes"]["neverExtractable"] is False
    signature = sign(http, copy, "ML_DSA", b"moved", b"ctx")
    raw = parse_spki(base64.b64decode(created.json()["json"]["publicKey"]))[2]
    module_for("ML-DSA-44").verify(raw, b"moved", signature, context=b"ctx")


def test_decapsulation_honours_the_key_password(http: httpx.Client) -> None:
    label = unique("kem-pw")
    created = http.post("/v1/key", json={"label": label, "algorithm": "ML-KEM-512", "password": "s3cret",
                                         "attributes": {"sign": False, "decrypt": True, "unwrap": False}})
    assert created.status_code == 201, created.text
    public = created.json()["json"]["publicKey"]
    ciphertext, shared = module_for("ML-KEM-512").encaps(parse_spki(base64.b64decode(public))[2])
    assert error(decapsulate(http, label, ciphertext)) == (400, 620)
    answer = http.post("/v1/synchronousDecapsulate", json={"decapsulationRequest": {
        "decapsulationKeyName": label, "ciphertext": b64(ciphertext), "keyPassword": list("s3cret")}})
    assert answer.status_code == 200, answer.text
    assert base64.b64decode(answer.json()["sharedSecret"]) == shared
    assert error(http.post("/v1/encapsulate", json={"keyName": label})) == (400, 620)
    assert http.post("/v1/encapsulate", json={"keyName": label, "keyPassword": "s3cret"}).status_code == 200
