"""Derivation masters and children over HTTP: creation rules, persisted and temporary children,
the master's password over its children, wrapping a derived key, strict key names."""

from __future__ import annotations

import base64

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.domain.derivation.helpers import (
    ED25519,
    P256,
    SECP256K1,
    SIGN_ATTRIBUTES,
    attributes,
    b64,
    import_seed,
    tsb_error,
)
from tests.helpers import unique

SEED = bytes(range(32))


def sign(http: httpx.Client, name: str, payload: bytes, algorithm: str = "SHA256_WITH_ECDSA",
         **extra: object) -> httpx.Response:
    return http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(payload), "signKeyName": name, "signatureAlgorithm": algorithm, **extra}})


def public_key(spki_b64: str) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    key = serialization.load_der_public_key(base64.b64decode(spki_b64))
    assert isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return key


@pytest.mark.parametrize(("algorithm", "curve", "flags", "derivation_type"), [
    ("EC", SECP256K1, {"bip32": True}, "SLIP-10"),
    ("EC", SECP256K1, {"slip10": True}, "SLIP-10"),
    ("EC", P256, {"bip32": True, "slip10": True}, "SLIP-10"),
    ("ED", ED25519, {"slip10": True}, "ADA/SLIP-10"),
    ("ED", ED25519, {"bip32": True, "slip10": True}, "ADA/SLIP-10"),
])
def test_generated_master(client: httpx.Client, algorithm: str, curve: str, flags: dict[str, bool],
                          derivation_type: str) -> None:
    label = unique("gen-master")
    created = client.post("/v1/key", json={"label": label, "algorithm": algorithm, "curveOid": curve, "attributes": {
        "sign": True, "decrypt": False, "unwrap": False, "derive": True, "destroyable": True, **flags}})
    assert created.status_code == 201, created.text
    body = created.json()
    derived = body["json"]["derivedAttributes"]
    assert derived["derivationType"] == derivation_type
    assert len(bytes.fromhex(derived["derivationValue"])) == 32 and derived["derivationValue"].isupper()
    assert f'<derivation_value type="{derivation_type}">{derived["derivationValue"]}</derivation_value>' in body["xml"]
    assert (body["json"]["extendedPublicKey"] or "").startswith("xpub") == (curve == SECP256K1)
    child = f"{label}/44'/0'/0'"
    signed = sign(client, child, b"m", "EDDSA" if algorithm == "ED" else "SHA256_WITH_ECDSA")
    assert signed.status_code == 200, signed.text


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"algorithm": "EC", "curveOid": SECP256K1, "flags": {"bip32": True, "derive": False}}, 400, 606),
    ({"algorithm": "ED", "curveOid": ED25519, "flags": {"bip32": True}}, 400, 634),  # Cardano
    ({"algorithm": "EC", "curveOid": "1.3.132.0.34", "flags": {"slip10": True}}, 400, 634),  # P-384
    ({"algorithm": "RSA", "keySize": 2048, "flags": {"bip32": True}}, 400, 634),
])
def test_master_creation_refusals(client: httpx.Client, body: dict[str, object], status: int, code: int) -> None:
    flags = body.pop("flags")
    assert isinstance(flags, dict)
    attributes_ = {"sign": True, "decrypt": False, "unwrap": False, "derive": True, **flags}
    error = tsb_error(client.post("/v1/key", json={"label": unique("bad-master"), **body,
                                                    "attributes": attributes_}), status, code)
    if code == 634 and body.get("algorithm") == "ED":
        assert "Cardano" in error["message"]


@pytest.mark.parametrize(("seed", "curve", "code"), [
    (bytes(15), SECP256K1, 600),  # 120 bits
    (bytes(65), SECP256K1, 600),  # 520 bits
    (bytes(32), "1.2.3.4", 600),
])
def test_seed_import_refusals(client: httpx.Client, seed: bytes, curve: str, code: int) -> None:
    tsb_error(client.post("/v1/importedKey", json={"label": unique("bad-seed"), "seed": b64(seed), "curveOid": curve,
                                                   "attributes": SIGN_ATTRIBUTES}), 400, code)


def test_seed_import_without_derivation_flags_is_refused(client: httpx.Client) -> None:
    attrs = {**SIGN_ATTRIBUTES, "slip10": False}
    tsb_error(client.post("/v1/importedKey", json={"label": unique("flagless"), "seed": b64(SEED),
                                                   "curveOid": SECP256K1, "attributes": attrs}), 400, 606)


def test_bip32_on_plain_import_is_634(client: httpx.Client) -> None:
    private = ec.generate_private_key(ec.SECP256K1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tsb_error(client.post("/v1/key/import/plain", json={"label": unique("plain"), "algorithm": "EC",
                                                        "privateKey": b64(private),
                                                        "attributes": {"sign": True, "bip32": True}}), 400, 634)


def test_same_seed_same_keys_and_persisted_child(client: httpx.Client) -> None:
    """Two masters of one seed derive the same children; a persisted child (``/v1/derivedKey``) is
    the temporary one, keeps the master's attributes when none are given, and signs."""
    first, second = unique("seed-a"), unique("seed-b")
    import_seed(client, first, SEED, SECP256K1)
    import_seed(client, second, SEED, SECP256K1)
    path = "44'/0'/0'/0/7"
    temporary = attributes(client, f"{second}/{path}")
    persisted = client.post("/v1/derivedKey", json={"masterKeyLabel": first, "derivationPath": path})
    assert persisted.status_code == 201, persisted.text
    child = persisted.json()["json"]
    assert child["label"] == f"{first}/{path}"
    assert child["publicKey"] == temporary["publicKey"]
    assert child["derivedAttributes"] == temporary["derivedAttributes"]
    assert child["attributes"] == attributes(client, first)["attributes"]
    assert f"{first}/{path}" in client.get("/v1/key").json()
    tsb_error(client.post("/v1/derivedKey", json={"masterKeyLabel": first, "derivationPath": path}), 400, 608)
    signed = sign(client, f"{first}/{path}", b"persisted")
    assert signed.status_code == 200
    public = public_key(child["publicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(signed.json()["signature"]), b"persisted", ec.ECDSA(hashes.SHA256()))
    # the persisted child can be deleted by its name; the master is untouched
    assert client.post("/v1/key/deleteKey", json={"label": f"{first}/{path}"}).status_code == 200
    assert f"{first}/{path}" not in client.get("/v1/key").json()
    assert attributes(client, f"{first}/{path}")["publicKey"] == temporary["publicKey"]  # still derivable


def test_persisted_child_with_its_own_attributes(client: httpx.Client) -> None:
    master = unique("own-attrs")
    import_seed(client, master, SEED, P256)
    response = client.post("/v1/derivedKey", json={
        "masterKeyLabel": master, "derivationPath": "1/2/3",
        "attributes": {"sign": False, "decrypt": True, "unwrap": False, "destroyable": True}})
    assert response.status_code == 201, response.text
    assert response.json()["json"]["attributes"]["sign"] is False
    tsb_error(sign(client, f"{master}/1/2/3", b"x"), 400, 701)  # the persisted child may not sign


def test_derived_key_refusals(client: httpx.Client) -> None:
    ed_master = unique("ed-master")
    import_seed(client, ed_master, SEED, ED25519)
    tsb_error(sign(client, f"{ed_master}/44'/0'/0", b"x", "EDDSA"), 400, 400)  # unhardened Ed25519 step
    tsb_error(client.post("/v1/derivedKey", json={"masterKeyLabel": ed_master, "derivationPath": "0'/1"}), 400, 400)
    tsb_error(client.post("/v1/derivedKey", json={"masterKeyLabel": ed_master, "derivationPath": "/0'"}), 400, 600)
    tsb_error(client.post("/v1/derivedKey", json={"masterKeyLabel": unique("absent"), "derivationPath": "0"}), 404,
              650)
    tsb_error(sign(client, f"{unique('absent')}/0", b"x"), 404, 650)
    deep = "/".join(["0"] * 33)
    tsb_error(sign(client, f"{ed_master}/{deep}", b"x"), 400, 610)
    signed = sign(client, f"{ed_master}/44'/0'/0'", b"x", "EDDSA")
    assert signed.status_code == 200, signed.text


def test_master_password_guards_children(client: httpx.Client) -> None:
    master = unique("pw-master")
    import_seed(client, master, SEED, SECP256K1, password="master-password-1")
    child = f"{master}/44'/60'/0'/0/0"
    tsb_error(sign(client, child, b"x"), 400, 620)
    tsb_error(sign(client, child, b"x", keyPassword="wrong-password-1"), 400, 620)
    assert sign(client, child, b"x", keyPassword="master-password-1").status_code == 200
    tsb_error(client.post("/v1/key/attributes", json={"label": child}), 400, 620)
    tsb_error(client.post("/v1/derivedKey", json={"masterKeyLabel": master, "derivationPath": "0"}), 400, 620)
    persisted = client.post("/v1/derivedKey", json={"masterKeyLabel": master, "derivationPath": "0",
                                                    "masterKeyPassword": "master-password-1"})
    assert persisted.status_code == 201, persisted.text
    tsb_error(sign(client, f"{master}/0", b"x"), 400, 620)  # the persisted child has the master's password


def test_verify_with_a_derived_name(client: httpx.Client) -> None:
    master = unique("verify-master")
    import_seed(client, master, SEED, SECP256K1)
    child = f"{master}/84'/0'/0'/0/1"
    signature = sign(client, child, b"verify me").json()["signature"]
    for name, valid in ((child, True), (f"{master}/84'/0'/0'/0/2", False)):
        verified = client.post("/v1/verify", json={"verifySignatureRequest": {
            "signKeyName": name, "signatureAlgorithm": "SHA256_WITH_ECDSA", "payload": b64(b"verify me"),
            "signature": signature}})
        assert verified.status_code == 200 and verified.json()["signatureValid"] is valid, verified.text


def test_wrap_and_unwrap_a_derived_key(client: httpx.Client) -> None:
    """AES_WRAP_PAD_EC of a temporary child (the master is extractable): the unwrapped key is the child."""
    master, wrapping, restored = unique("wrap-master"), unique("wrapping"), unique("restored")
    import_seed(client, master, SEED, SECP256K1,
                attributes={**SIGN_ATTRIBUTES, "extractable": True, "sensitive": False})
    cipher = {"sign": False, "decrypt": True, "unwrap": True, "wrap": True, "encrypt": True}
    assert client.post("/v1/key", json={"label": wrapping, "algorithm": "AES", "keySize": 256,
                                        "attributes": cipher}).status_code == 201
    child = f"{master}/44'/0'/0'/0/0"
    wrapped = client.post("/v1/wrap", json={"wrapKeyRequest": {"keyToBeWrapped": child, "wrapKeyName": wrapping,
                                                               "wrapMethod": "AES_WRAP_PAD_EC"}})
    assert wrapped.status_code == 200, wrapped.text
    unwrapped = client.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
        "wrappedKey": wrapped.json()["wrappedKey"], "label": restored, "unwrapKeyName": wrapping,
        "wrapMethod": "AES_WRAP_PAD_EC", "keyAlgorithm": "EC",
        "attributes": {"sign": True, "decrypt": False, "unwrap": False}}})
    assert unwrapped.status_code in (200, 201), unwrapped.text
    assert attributes(client, restored)["publicKey"] == attributes(client, child)["publicKey"]
