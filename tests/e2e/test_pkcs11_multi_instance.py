"""Two hsmgate processes on one SoftHSM2 token and one state database (SQLite): what one of them changes,
the other sees at once, although each remembers key handles and descriptions (the PKCS#11 key cache,
invalidated through the key generation). The pkcs11 counterpart of tests/store/test_soft_token_persistence.py's
cross-process tests. Signatures are checked with ``cryptography``."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers import ServeProcess, assert_tsb_error, unique
from tests.softhsm import create_token

pytestmark = [pytest.mark.pkcs11, pytest.mark.subprocess]

ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}


@pytest.fixture()
def two_instances(tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    token = create_token(tmp_path / "softhsm", "multi", export=False)
    env = {"HSMGATE_BACKEND": "pkcs11", "HSMGATE_PKCS11_MODULE": token.module_path,
           "HSMGATE_PKCS11_TOKEN_LABEL": token.token_label, "HSMGATE_PKCS11_PIN": token.pin,
           "SOFTHSM2_CONF": token.conf_path, "HSMGATE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
           "HSMGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}"}
    a = ServeProcess(tmp_path, "a", env)
    b: ServeProcess | None = None
    try:
        a.wait_ready()  # first alone: it makes the attestation key on the token
        b = ServeProcess(tmp_path, "b", env)
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        if b is not None:
            b.stop()


def create(client: httpx.Client, label: str) -> Any:
    response = client.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                            "attributes": ATTRIBUTES})
    assert response.status_code == 201, response.text
    return serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))


def sign(client: httpx.Client, label: str, payload: bytes) -> httpx.Response:
    return client.post("/v1/synchronousSign", json={"signRequest": {
        "payload": base64.b64encode(payload).decode(), "signKeyName": label,
        "signatureAlgorithm": "SHA256_WITH_ECDSA"}})


def signed_by(public: Any, response: httpx.Response, payload: bytes) -> None:
    assert response.status_code == 200, response.text
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(response.json()["signature"]), payload, ec.ECDSA(hashes.SHA256()))


def test_a_key_deleted_or_replaced_through_one_instance_is_seen_by_the_other_at_once(
        two_instances: tuple[ServeProcess, ServeProcess]) -> None:
    a, b = two_instances
    label = unique("shared")
    with a.client() as on_a, b.client() as on_b:
        first = create(on_a, label)
        for n in range(3):  # B now remembers the key's handle and description
            signed_by(first, sign(on_b, label, b"%d" % n), b"%d" % n)
            assert on_b.get(f"/v1/key/{label}/attributes").status_code == 200
        assert on_a.delete(f"/v1/key/{label}").status_code in (200, 204)
        # described from B's cache unless the key generation says a key changed (a sign would also find the
        # handle gone on the token: the description is asked first)
        assert on_b.get(f"/v1/key/{label}/attributes").status_code == 404
        assert_tsb_error(sign(on_b, label, b"after delete"), 650, 404)

        second = create(on_a, label)  # the same label, another key
        spki = on_a.get(f"/v1/key/{label}/attributes").json()["json"]["publicKey"]
        assert on_b.get(f"/v1/key/{label}/attributes").json()["json"]["publicKey"] == spki
        signed_by(second, sign(on_b, label, b"replaced"), b"replaced")
