"""LMS / HSS keys over HTTP (reference wave 2 §6.2): the TSB's example flow, signatures checked by a
second implementation (hsslms), the one-time key counter in the attributes, exhaustion, and keys
that never leave the token."""

from __future__ import annotations

import base64

import hsslms
import httpx
import pytest
from asn1crypto import core

from tests.helpers import unique

PAYLOAD = "U29tZVBheWxvYWQ="
LMS_ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "modifiable": True,
                  "destroyable": True, "sensitive": True}


def create_lms(http: httpx.Client, label: str, **extra: object) -> dict[str, object]:
    response = http.post("/v1/key", json={"label": label, "password": None, "algorithm": "LMS",
                                          "attributes": LMS_ATTRIBUTES, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json()["json"])


def sign(http: httpx.Client, label: str, payload: str = PAYLOAD) -> httpx.Response:
    return http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": payload, "payloadType": "UNSPECIFIED", "signKeyName": label, "keyPassword": None,
        "signatureAlgorithm": "LMS"}})


def hss_public_key(spki_b64: str) -> bytes:
    info = core.Sequence.load(base64.b64decode(spki_b64))
    return bytes(core.OctetBitString.load(info[1].dump()).native)


def test_the_reference_flow(client: httpx.Client) -> None:
    label = unique("pqc_lms")
    key = create_lms(client, label)
    assert key["algorithm"] == "HSS-LMS" and key["algorithmOid"] == "1.2.840.113549.1.9.16.3.17"
    spki = base64.b64decode(str(key["publicKey"]))
    # the TSB example's layout: SPKI prefix, HSS L=1, LMS_SHA256_M32_H5 (5), LMOTS_SHA256_N32_W1 (1)
    assert spki.startswith(bytes.fromhex("304e300d060b2a864886f70d0109100311033d00" "00000001" "00000005" "00000001"))
    assert (key["remainingSignatures"], key["maxSignatures"]) == (32, 32)
    signed = sign(client, label)
    assert signed.status_code == 200, signed.text
    signature = base64.b64decode(signed.json()["signature"])
    assert len(signature) == 8688 and signature[:8] == bytes(8)  # Nspk = 0, q = 0
    hsslms.HSS_Pub(hss_public_key(str(key["publicKey"]))).verify(base64.b64decode(PAYLOAD), signature)
    with pytest.raises(hsslms.INVALID):
        hsslms.HSS_Pub(hss_public_key(str(key["publicKey"]))).verify(b"other", signature)
    verified = client.post("/v1/verify", json={"verifySignatureRequest": {
        "signKeyName": label, "signatureAlgorithm": "LMS", "payload": PAYLOAD, "signature": signed.json()["signature"]}})
    assert verified.json() == {"signatureValid": True}
    attributes = client.post("/v1/key/attributes", json={"label": label}).json()["json"]
    assert attributes["remainingSignatures"] == 31


def test_exhaustion_and_distinct_indexes(client: httpx.Client) -> None:
    label = unique("lms-exhaust")
    key = create_lms(client, label)
    public = hsslms.HSS_Pub(hss_public_key(str(key["publicKey"])))
    seen = set()
    for n in range(32):
        message = f"message {n}".encode()
        response = sign(client, label, base64.b64encode(message).decode())
        assert response.status_code == 200, response.text
        signature = base64.b64decode(response.json()["signature"])
        public.verify(message, signature)
        seen.add(int.from_bytes(signature[4:8], "big"))
    assert seen == set(range(32))
    refused = sign(client, label)
    assert refused.status_code == 400 and refused.json()["errorCode"] == 614, refused.text
    assert "exhausted" in refused.json()["message"]
    assert client.post("/v1/key/attributes", json={"label": label}).json()["json"]["remainingSignatures"] == 0


def test_height_10_and_refusals(client: httpx.Client) -> None:
    label = unique("lms-h10")
    key = create_lms(client, label, keySize=10)
    assert key["maxSignatures"] == 1024 and base64.b64decode(str(key["publicKey"]))[24:28] == bytes.fromhex("00000006")
    signature = base64.b64decode(sign(client, label).json()["signature"])
    hsslms.HSS_Pub(hss_public_key(str(key["publicKey"]))).verify(base64.b64decode(PAYLOAD), signature)
    bad = client.post("/v1/key", json={"label": unique("lms-h20"), "algorithm": "LMS", "keySize": 20,
                                       "attributes": LMS_ATTRIBUTES})
    assert bad.status_code == 400 and bad.json()["errorCode"] == 603, bad.text


def test_an_lms_key_never_leaves_the_token(client: httpx.Client) -> None:
    label, wrapping = unique("lms-extractable"), unique("lms-aes")
    create_lms(client, label, attributes={**LMS_ATTRIBUTES, "extractable": True, "sensitive": False})
    assert client.post("/v1/key", json={"label": wrapping, "algorithm": "AES", "keySize": 256, "attributes": {
        "sign": False, "decrypt": True, "unwrap": True, "wrap": True, "encrypt": True}}).status_code == 201
    wrapped = client.post("/v1/wrap", json={"wrapKeyRequest": {"keyToBeWrapped": label, "wrapKeyName": wrapping,
                                                               "wrapMethod": "AES_WRAP_PAD"}})
    assert wrapped.status_code == 400, wrapped.text
    exported = client.post("/v1/key/export/plain", json={"label": label})
    assert exported.status_code == 400, exported.text
