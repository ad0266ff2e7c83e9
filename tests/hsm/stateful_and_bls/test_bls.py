"""BLS keys (BLS12-381, ciphersuite BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_) over HTTP, checked
by a second implementation: milagro_bls_binding (Rust, Ethereum consensus clients) verifies
hsmgate's signatures and makes signatures hsmgate must verify; the G client's create / sign / verify /
wrap flow of the reference (§6.1) runs as written."""

from __future__ import annotations

import base64

import httpx
import milagro_bls_binding as milagro
import pytest
from asn1crypto import core
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from tests.helpers import unique

pytestmark = pytest.mark.slow  # py-ecc is pure Python: ~0.2 s per signature, ~0.7 s per verification

PAYLOAD = base64.b64encode(b"go-client-test-payload").decode()
BLS_OID = "1.3.6.1.4.1.44668.5.3.1.1"


def create_bls(http: httpx.Client, label: str, **attributes: bool) -> dict[str, object]:
    response = http.post("/v1/key", json={"label": label, "algorithm": "BLS", "attributes": {
        "decrypt": True, "encrypt": True, "extractable": True, "sign": True, "unwrap": True, "verify": True,
        "wrap": True, "destroyable": True, **attributes}, "policy": None})
    assert response.status_code == 201, response.text
    return dict(response.json()["json"])


def g1_point(spki_b64: str) -> bytes:
    """The 48-byte compressed G1 public key inside hsmgate's SPKI, read with asn1crypto."""
    info = core.Sequence.load(base64.b64decode(spki_b64))
    algorithm = core.Sequence.load(info[0].dump())
    assert core.ObjectIdentifier.load(algorithm[0].dump()).dotted == BLS_OID
    point = core.OctetBitString.load(info[1].dump()).native
    assert isinstance(point, bytes) and len(point) == 48
    return point


def test_bls_sign_and_verify_against_milagro(client: httpx.Client) -> None:
    label = unique("go-client-test-bls")
    key = create_bls(client, label)
    assert key["algorithm"] == "BLS" and key["algorithmOid"] == BLS_OID
    public = g1_point(str(key["publicKey"]))
    signed = client.post("/v1/synchronousSign", json={"signRequest": {
        "payload": PAYLOAD, "payloadType": "UNSPECIFIED", "signKeyName": label, "signatureAlgorithm": "BLS",
        "signatureType": "DER"}})
    assert signed.status_code == 200, signed.text
    signature = base64.b64decode(signed.json()["signature"])
    assert len(signature) == 96
    assert milagro.Verify(public, b"go-client-test-payload", signature)
    assert not milagro.Verify(public, b"another payload", signature)
    verified = client.post("/v1/verify", json={"verifySignatureRequest": {
        "payload": PAYLOAD, "signKeyName": label, "signatureAlgorithm": "BLS", "signature": signed.json()["signature"]}})
    assert verified.json() == {"signatureValid": True}


def test_bls_verifies_a_second_implementations_signature(client: httpx.Client) -> None:
    """A key made by milagro, brought in by AES_WRAP_PAD_BLS unwrap; a milagro signature verifies."""
    secret = bytes.fromhex("263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3")
    wrapping, restored = unique("bls-wrapping"), unique("bls-restored")
    cipher = {"sign": False, "decrypt": True, "unwrap": True, "wrap": True, "encrypt": True}
    assert client.post("/v1/key", json={"label": wrapping, "algorithm": "AES", "keySize": 256, "attributes": {
        **cipher, "extractable": True, "sensitive": False}}).status_code == 201
    exported = client.post("/v1/key/export/plain", json={"label": wrapping}).json()
    wrapped = aes_key_wrap_with_padding(base64.b64decode(exported["secretKey"]), secret)
    unwrapped = client.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
        "wrappedKey": base64.b64encode(wrapped).decode(), "label": restored, "unwrapKeyName": wrapping,
        "wrapMethod": "AES_WRAP_PAD_BLS", "attributes": {"sign": True, "decrypt": False, "unwrap": False}}})
    assert unwrapped.status_code in (200, 201), unwrapped.text
    key = client.post("/v1/key/attributes", json={"label": restored}).json()["json"]
    assert key["algorithm"] == "BLS"
    assert g1_point(key["publicKey"]) == milagro.SkToPk(secret)
    message = b"signed by milagro"
    signature = milagro.Sign(secret, message)
    ours = client.post("/v1/synchronousSign", json={"signRequest": {
        "payload": base64.b64encode(message).decode(), "signKeyName": restored, "signatureAlgorithm": "BLS"}})
    assert base64.b64decode(ours.json()["signature"]) == signature  # BLS signatures are deterministic
    for candidate, valid in ((signature, True), (milagro.Sign(secret, b"other"), False)):
        verified = client.post("/v1/verify", json={"verifySignatureRequest": {
            "payload": base64.b64encode(message).decode(), "signKeyName": restored, "signatureAlgorithm": "BLS",
            "signature": base64.b64encode(candidate).decode()}})
        assert verified.json() == {"signatureValid": valid}


def test_bls_wrap_round_trip(client: httpx.Client) -> None:
    """The G client's wrap test: AES_WRAP_BLS / AES_WRAP_PAD_BLS, unwrap under a new label, the
    attributes say BLS and the public key is the original's."""
    label, wrapping = unique("bls-wrapped"), unique("bls-aes")
    original = create_bls(client, label, sensitive=False)
    assert client.post("/v1/key", json={"label": wrapping, "algorithm": "AES", "keySize": 256, "attributes": {
        "sign": False, "decrypt": True, "unwrap": True, "wrap": True, "encrypt": True}}).status_code == 201
    for method in ("AES_WRAP_BLS", "AES_WRAP_PAD_BLS"):
        wrapped = client.post("/v1/wrap", json={"wrapKeyRequest": {"keyToBeWrapped": label, "wrapKeyName": wrapping,
                                                                   "wrapMethod": method}})
        assert wrapped.status_code == 200, wrapped.text
        restored = unique("bls-unwrapped")
        unwrapped = client.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
            "wrappedKey": wrapped.json()["wrappedKey"], "label": restored, "unwrapKeyName": wrapping,
            "wrapMethod": method, "attributes": {"sign": True, "decrypt": False, "unwrap": False}}})
        assert unwrapped.status_code in (200, 201), unwrapped.text
        key = client.post("/v1/key/attributes", json={"label": restored}).json()["json"]
        assert key["algorithm"] == "BLS" and key["publicKey"] == original["publicKey"]


def test_bls_refusals(client: httpx.Client) -> None:
    label, ec_label = unique("bls-refuse"), unique("ec-not-bls")
    create_bls(client, label)
    assert client.post("/v1/key", json={"label": ec_label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                        "attributes": {"sign": True, "decrypt": False, "unwrap": False}}).status_code == 201
    for key, algorithm in ((ec_label, "BLS"), (label, "SHA256_WITH_ECDSA")):
        refused = client.post("/v1/synchronousSign", json={"signRequest": {
            "payload": PAYLOAD, "signKeyName": key, "signatureAlgorithm": algorithm}})
        assert refused.status_code == 400 and refused.json()["errorCode"] == 607, refused.text
    malformed = client.post("/v1/verify", json={"verifySignatureRequest": {
        "payload": PAYLOAD, "signKeyName": label, "signatureAlgorithm": "BLS", "signature": PAYLOAD}})
    assert malformed.json() == {"signatureValid": False}
