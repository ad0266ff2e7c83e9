"""BIP-340 Schnorr (``NONE_WITH_EC_SCHNORR_BIP0340``) and BIP-341 Taproot tweaks over HTTP.

* Every row of BIP-340's ``test-vectors.csv``: rows with a secret key are imported and signed with
  the row's aux_rand (the signature must be the published one, byte for byte) and verified through
  ``/v1/verify``; rows with only a public key are verified through ``/v1/verify`` with the imported
  public key, and must give the published result; the two rows whose public key is no curve point
  cannot be imported at all.
* BIP-86 vectors: the internal keys of m/86'/0'/0'/… derived from the vectors' mnemonic, and
  key-path signatures (``merkleRootData`` empty, or the tweak in ``taprootTweakData``) that verify
  under the published output keys with libsecp256k1 (coincurve).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import coincurve
import httpx
import pytest
from bip_utils import P2TRAddrEncoder
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.domain.derivation.helpers import P256, SECP256K1, attributes, b64, import_seed, tsb_error
from tests.helpers import unique

DATA = Path(__file__).parent / "data"
ALGORITHM = "NONE_WITH_EC_SCHNORR_BIP0340"
ROWS = list(csv.DictReader((DATA / "bip340_test_vectors.csv").read_text().splitlines()))


def schnorr_sign(http: httpx.Client, name: str, message: bytes, **fields: Any) -> httpx.Response:
    return http.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(message), "payloadType": "UNSPECIFIED", "signKeyName": name, "signatureAlgorithm": ALGORITHM,
        **fields}})


def verify(http: httpx.Client, name: str, message: bytes, signature: bytes) -> bool:
    response = http.post("/v1/verify", json={"verifySignatureRequest": {
        "signKeyName": name, "signatureAlgorithm": ALGORITHM, "payload": b64(message), "signature": b64(signature)}})
    assert response.status_code == 200, response.text
    return bool(response.json()["signatureValid"])


def import_private(http: httpx.Client, label: str, secret: int, curve: ec.EllipticCurve | None = None) -> None:
    der = ec.derive_private_key(secret, curve or ec.SECP256K1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    response = http.post("/v1/key/import/plain", json={"label": label, "algorithm": "EC", "privateKey": b64(der),
                                                        "attributes": {"sign": True, "decrypt": False, "unwrap": False}})
    assert response.status_code in (200, 201), response.text


def import_x_only(http: httpx.Client, label: str, x: bytes) -> httpx.Response:
    """The public key with x-coordinate ``x`` and an even y (BIP-340's lift_x), as an SPKI."""
    try:
        spki = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), b"\x02" + x).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except ValueError:  # not a curve point: send the raw SPKI bytes anyway, the server must refuse them
        prefix = bytes.fromhex("3036301006072a8648ce3d020106052b8104000a032200")
        spki = prefix + b"\x02" + x
    return http.post("/v1/key/import/plain", json={"label": label, "algorithm": "EC", "publicKey": b64(spki)})


@pytest.mark.parametrize("row", ROWS, ids=[f"row{r['index']}" for r in ROWS])
def test_bip340_vectors(client: httpx.Client, row: dict[str, str]) -> None:
    label = unique(f"bip340-{row['index']}")
    message, signature = bytes.fromhex(row["message"]), bytes.fromhex(row["signature"])
    expected = row["verification result"] == "TRUE"
    if row["secret key"]:
        import_private(client, label, int(row["secret key"], 16))
        signed = schnorr_sign(client, label, message, auxiliaryRandomData=b64(bytes.fromhex(row["aux_rand"])))
        assert signed.status_code == 200, signed.text
        assert base64.b64decode(signed.json()["signature"]) == signature
        x_only = bytes.fromhex(row["public key"])
        assert attributes(client, label)["publicKey"]  # the key exists; its x-only form is the row's
        assert coincurve.PublicKeyXOnly(x_only).verify(signature, message)
        assert verify(client, label, message, signature) is expected
        return
    imported = import_x_only(client, label, bytes.fromhex(row["public key"]))
    if row["index"] in ("5", "14"):  # no curve point: such a key cannot exist in the partition
        assert imported.status_code == 400, imported.text
        assert not expected
        return
    assert imported.status_code in (200, 201), imported.text
    assert verify(client, label, message, signature) is expected


def test_random_aux_when_absent(client: httpx.Client) -> None:
    label = unique("bip340-random")
    import_private(client, label, 0xB7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF)
    message = hashlib.sha256(b"random aux").digest()
    first, second = (base64.b64decode(schnorr_sign(client, label, message).json()["signature"]) for _ in range(2))
    assert first != second and len(first) == 64
    x_only = bytes.fromhex(ROWS[1]["public key"])
    assert coincurve.PublicKeyXOnly(x_only).verify(first, message)
    assert coincurve.PublicKeyXOnly(x_only).verify(second, message)


def _tagged(tag: str, data: bytes) -> bytes:
    digest = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(digest + digest + data).digest()


def _bip39_seed(mnemonic: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", mnemonic.encode(), b"mnemonic", 2048)  # BIP-39, no passphrase


def test_bip86_taproot_key_path(client: httpx.Client) -> None:
    document = json.loads((DATA / "bip86_vectors.json").read_text())
    master = unique("bip86")
    import_seed(client, master, _bip39_seed(document["mnemonic"]), SECP256K1)
    message = hashlib.sha256(b"a BIP-341 sighash stands here").digest()
    for vector in document["vectors"]:
        child = f"{master}/{vector['path']}"
        public = serialization.load_der_public_key(base64.b64decode(attributes(client, child)["publicKey"]))
        assert isinstance(public, ec.EllipticCurvePublicKey)
        internal = public.public_numbers().x.to_bytes(32, "big")
        assert internal.hex() == vector["internalKey"]
        output = bytes.fromhex(vector["outputKey"])
        assert P2TRAddrEncoder.EncodeKey(b"\x02" + internal, hrp="bc") == vector["address"]
        by_root = schnorr_sign(client, child, message, merkleRootData="")
        by_tweak = schnorr_sign(client, child, message, taprootTweakData=b64(_tagged("TapTweak", internal)))
        untweaked = schnorr_sign(client, child, message)
        for response in (by_root, by_tweak, untweaked):
            assert response.status_code == 200, response.text
        assert coincurve.PublicKeyXOnly(output).verify(base64.b64decode(by_root.json()["signature"]), message)
        assert coincurve.PublicKeyXOnly(output).verify(base64.b64decode(by_tweak.json()["signature"]), message)
        assert not coincurve.PublicKeyXOnly(output).verify(base64.b64decode(untweaked.json()["signature"]), message)
        assert coincurve.PublicKeyXOnly(internal).verify(base64.b64decode(untweaked.json()["signature"]), message)
        assert verify(client, child, message, base64.b64decode(untweaked.json()["signature"]))


def test_script_tree_root(client: httpx.Client) -> None:
    """merkleRootData of 32 bytes: the output key is the internal key tweaked with
    tagged_hash("TapTweak", x(P) ‖ root), computed here by libsecp256k1's x-only tweak_add."""
    master = unique("tapscript")
    import_seed(client, master, bytes(range(32)), SECP256K1)
    child = f"{master}/86'/1'/0'/0/5"
    public = serialization.load_der_public_key(base64.b64decode(attributes(client, child)["publicKey"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    internal = public.public_numbers().x.to_bytes(32, "big")
    root = _tagged("TapLeaf", b"\xc0\x01\x51")  # a one-leaf tree holding OP_TRUE
    output = coincurve.PublicKeyXOnly(internal)
    output.tweak_add(_tagged("TapTweak", internal + root))  # in place
    message = hashlib.sha256(b"script tree").digest()
    signed = schnorr_sign(client, child, message, merkleRootData=b64(root))
    assert signed.status_code == 200, signed.text
    assert coincurve.PublicKeyXOnly(output.format()).verify(base64.b64decode(signed.json()["signature"]), message)


def test_bip340_refusals(client: httpx.Client) -> None:
    label, p256 = unique("bip340-bad"), unique("bip340-p256")
    import_private(client, label, 3)
    import_private(client, p256, 3, ec.SECP256R1())
    message = bytes(32)
    tsb_error(schnorr_sign(client, label, bytes(31)), 400, 612)
    tsb_error(schnorr_sign(client, label, message, auxiliaryRandomData=b64(bytes(31))), 400, 600)
    tsb_error(schnorr_sign(client, label, message, taprootTweakData=b64(bytes(32)), merkleRootData=""), 400, 600)
    tsb_error(schnorr_sign(client, label, message, taprootTweakData=b64(bytes(31))), 400, 600)
    tsb_error(schnorr_sign(client, label, message, merkleRootData=b64(bytes(16))), 400, 600)
    tsb_error(schnorr_sign(client, label, message, taprootTweakData=b64(b"\xff" * 32)), 400, 612)
    tsb_error(schnorr_sign(client, label, message, signatureType="ETH"), 400, 600)
    tsb_error(schnorr_sign(client, p256, message), 400, 607)
    tsb_error(client.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(b"x"), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA",
        "auxiliaryRandomData": b64(bytes(32))}}), 400, 600)
    assert schnorr_sign(client, label, message, signatureType="RAW").status_code == 200
    assert P256  # the refused curve above
