"""Internal keys (attestation, SKA timestamp, data-object key) are refused with 614 on every
key-operation route, for every role: the key-use gate reads a flag on the key, no route keeps a list.

The repro that motivated it: a keyOperation caller encrypting with ``hsmgate-data-object-key``
after a private data object was stored got 200, and with the stored nonce and AAD could have
decrypted private data objects, which only keyManagement may read.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hsmgate.domain.data_objects import DATA_OBJECT_KEY
from tests.helpers import LiveServer, soft_settings

MANAGEMENT = "km-key-0123456789abcdef"
OPERATION = "op-key-0123456789abcdef"
SERVICE = "svc-key-0123456789abcdef"
INTERNAL = ("attestation-key", "timestamp-key", DATA_OBJECT_KEY)
PAYLOAD = base64.b64encode(b"payload").decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = soft_settings(tmp_path_factory.mktemp("internal-keys"), dev=False,
                             api_keys_key_management=[MANAGEMENT], api_keys_key_operation=[OPERATION],
                             api_keys_service=[SERVICE])
    with LiveServer(settings) as live:
        with live.client(headers={"X-API-KEY": MANAGEMENT}) as http:
            # a private data object: the data-object key now exists in the partition
            response = http.post("/v1/dataObject", json={"name": "secret-object", "value": PAYLOAD,
                                                         "attributes": {"private": True}})
            assert response.status_code == 201, response.text
            assert DATA_OBJECT_KEY in http.get("/v1/key").json()
        yield live


def operations(label: str) -> list[tuple[str, dict[str, object]]]:
    """Every key-operation route, each naming ``label`` as the key it uses."""
    return [
        ("/v1/synchronousSign", {"signRequest": {"payload": PAYLOAD, "signKeyName": label,
                                                 "signatureAlgorithm": "SHA256_WITH_RSA"}}),
        ("/v1/verify", {"verifySignatureRequest": {"payload": PAYLOAD, "signKeyName": label,
                                                   "signatureAlgorithm": "SHA256_WITH_RSA", "signature": PAYLOAD}}),
        ("/v1/encrypt", {"encryptRequest": {"payload": PAYLOAD, "encryptKeyName": label,
                                            "cipherAlgorithm": "AES_GCM"}}),
        ("/v1/synchronousDecrypt", {"decryptRequest": {"encryptedPayload": base64.b64encode(bytes(32)).decode(),
                                                       "decryptKeyName": label, "cipherAlgorithm": "AES_GCM",
                                                       "initializationVector": base64.b64encode(bytes(12)).decode()}}),
        ("/v1/wrap", {"wrapKeyRequest": {"keyToBeWrapped": label, "wrapKeyName": label, "wrapMethod": "AES_WRAP"}}),
        ("/v1/synchronousUnwrap", {"unwrapKeyRequest": {
            "wrappedKey": base64.b64encode(bytes(40)).decode(), "label": "unwrapped-by-internal",
            "attributes": {"decrypt": True, "sign": False, "unwrap": False}, "unwrapKeyName": label,
            "wrapMethod": "AES_WRAP"}}),
        ("/v1/synchronousHmac", {"hmacRequest": {"payload": PAYLOAD, "keyName": label}}),
        ("/v1/verifyHmac", {"verifyHmacRequest": {"payload": PAYLOAD, "keyName": label, "signature": PAYLOAD}}),
        ("/v1/synchronousSignBatch", {"signRequests": [{"payload": PAYLOAD, "signKeyName": label,
                                                        "signatureAlgorithm": "SHA256_WITH_RSA"}]}),
        ("/v1/verifyBatch", {"verifyRequests": [{"payload": PAYLOAD, "signKeyName": label,
                                                 "signatureAlgorithm": "SHA256_WITH_RSA", "signature": PAYLOAD}]}),
        ("/v1/encapsulate", {"keyName": label}),
        ("/v1/synchronousDecapsulate", {"decapsulationRequest": {"decapsulationKeyName": label,
                                                                 "ciphertext": PAYLOAD}}),
        ("/v1/certificate/synchronous/selfsign", {"signKeyName": label, "commonName": "x", "validity": 1,
                                                  "signatureAlgorithm": "SHA256_WITH_RSA"}),
        ("/v1/certificate/synchronous/request", {"signKeyName": label, "validity": 1,
                                                 "signatureAlgorithm": "SHA256_WITH_RSA",
                                                 "standardCertificateAttributes": {"commonName": "x"}}),
        ("/v1/key/export/plain", {"label": label}),
    ]


def _error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    if "results" in body:  # a batch: the item's error
        return body["results"][0]
    return body


@pytest.mark.parametrize("label", INTERNAL)
@pytest.mark.parametrize("role_key", [OPERATION, MANAGEMENT, SERVICE], ids=["keyOperation", "keyManagement",
                                                                            "service"])
def test_every_key_operation_refuses_internal_keys(server: LiveServer, label: str, role_key: str) -> None:
    not_allowed = []
    with server.client(headers={"X-API-KEY": role_key}) as http:
        for path, body in operations(label):
            response = http.post(path, json=body)
            if response.status_code in (401, 403):  # the role may not call this route at all
                not_allowed.append(path)
                continue
            error = _error_of(response)
            assert error.get("errorCode") == 614, (path, response.status_code, response.text)
            assert "internal" in str(error["message"]), (path, error)
    if role_key == OPERATION:  # keyOperation may call every key operation but the export
        assert not_allowed == ["/v1/key/export/plain"]


def test_the_data_object_key_repro_is_closed(server: LiveServer) -> None:
    with server.client(headers={"X-API-KEY": OPERATION}) as http:
        response = http.post("/v1/encrypt", json={"encryptRequest": {
            "payload": "UA==", "encryptKeyName": DATA_OBJECT_KEY, "cipherAlgorithm": "AES_GCM"}})
        assert response.status_code == 400 and response.json()["errorCode"] == 614


def test_internal_keys_cannot_be_created_deleted_or_changed(server: LiveServer, tmp_path: Path) -> None:
    with server.client(headers={"X-API-KEY": MANAGEMENT}) as http:
        for label in INTERNAL:
            created = http.post("/v1/key", json={"label": label, "algorithm": "AES", "keySize": 256,
                                                 "attributes": {"decrypt": True, "sign": False, "unwrap": False}})
            assert created.status_code == 400 and created.json()["errorCode"] == 614, created.text
            deleted = http.post("/v1/key/deleteKey", json={"label": label})
            assert deleted.status_code == 400 and deleted.json()["errorCode"] == 614, deleted.text
            changed = http.post("/v1/key/changePassword", json={"label": label, "newPassword": "x" * 12})
            assert changed.status_code == 400 and changed.json()["errorCode"] == 614, changed.text
        # the attestation key's attributes stay readable: clients check attestations with it
        assert http.get("/v1/key/attestation-key/attributes").status_code == 200
        # and private data objects still work for keyManagement
        assert base64.b64decode(http.get("/v1/dataObject/secret-object").json()["value"]) == b"payload"


def test_a_flagged_key_is_refused_before_its_first_use(tmp_path: Path) -> None:
    """The data-object key's name is reserved at start-up, before any private object exists."""
    with LiveServer(soft_settings(tmp_path)) as live, live.client() as http:
        response = http.post("/v1/key", json={"label": DATA_OBJECT_KEY, "algorithm": "AES", "keySize": 256,
                                              "attributes": {"decrypt": True, "sign": False, "unwrap": False}})
        assert response.status_code == 400 and response.json()["errorCode"] == 614
