"""Shared helpers of the derivation tests: seed import, attributes and errors over HTTP."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

SECP256K1 = "1.3.132.0.10"
P256 = "1.2.840.10045.3.1.7"
ED25519 = "1.3.101.112"
CURVE_OIDS = {"secp256k1": SECP256K1, "nist256p1": P256, "ed25519": ED25519}

SIGN_ATTRIBUTES = {"decrypt": False, "sign": True, "unwrap": False, "derive": True, "slip10": True,
                   "destroyable": True}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def import_seed(http: httpx.Client, label: str, seed: bytes, curve_oid: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"label": label, "seed": b64(seed), "curveOid": curve_oid,
                            "attributes": dict(SIGN_ATTRIBUTES)}
    body.update(extra)
    response = http.post("/v1/importedKey", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def attributes(http: httpx.Client, name: str, password: str | None = None) -> dict[str, Any]:
    response = http.post("/v1/key/attributes", json={"label": name, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["json"]


def raw_public_key(spki_b64: str) -> bytes:
    """The compressed EC point (33 bytes) or the raw Ed25519 key (32 bytes) of a base64 SPKI."""
    public = serialization.load_der_public_key(base64.b64decode(spki_b64))
    if isinstance(public, ec.EllipticCurvePublicKey):
        return public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def tsb_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errorCode", "reason", "message"}, body
    assert body["errorCode"] == code, body
    return body


def tsb_path(vector_path: str) -> str:
    """``m/0'/1`` → ``0'/1`` (the TSB writes no ``m/``); ``m`` → empty."""
    return vector_path[2:] if vector_path.startswith("m/") else ""
