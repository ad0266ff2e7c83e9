"""BIP-32 vectors 1–4 and SLIP-0010 vectors (secp256k1, NIST P-256, Ed25519) over HTTP.

Each seed is imported with ``POST /v1/importedKey``; each chain of the published vectors is then read
back through ``POST /v1/key/attributes`` with the key name ``<master>/<path>`` (temporary
derivation). The public key, chain code (``derivationValue``) and BIP-32 xpub hsmgate reports must be
the published ones; the xpub is also decoded by a second library (python-bip32, not the bip-utils
hsmgate derives with) and a signature of the derived key is checked with ``cryptography`` against
the published public key.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from bip32 import BIP32
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.domain.derivation.helpers import (
    CURVE_OIDS,
    SECP256K1,
    attributes,
    b64,
    import_seed,
    raw_public_key,
    tsb_path,
)
from tests.helpers import unique

DATA = Path(__file__).parent / "data"


def _bip32_cases() -> list[tuple[str, str, list[list[str]]]]:
    document = json.loads((DATA / "bip32_vectors.json").read_text())
    return [(v["name"], v["seed"], v["chain"]) for v in document["vectors"]]


def _slip10_cases() -> list[tuple[str, str, list[list[str]]]]:
    cases: list[tuple[str, str, list[list[str]]]] = []
    for line in (DATA / "slip10_vectors.txt").read_text().splitlines():
        if line.startswith("## "):
            _, curve, seed = line.split()
            cases.append((curve, seed, []))
        elif line and not line.startswith("#"):
            cases[-1][2].append(line.split())
    return cases


@pytest.mark.parametrize(("name", "seed", "chain"), _bip32_cases(), ids=lambda v: v if isinstance(v, str)
                         and len(v) < 3 else "")
def test_bip32_vectors(client: httpx.Client, name: str, seed: str, chain: list[list[str]]) -> None:
    label = unique(f"bip32-v{name}")
    master = import_seed(client, label, bytes.fromhex(seed), SECP256K1)
    assert master["json"]["derivedAttributes"]["derivationType"] == "SLIP-10"
    for path, xpub, xprv in chain:
        key_name = f"{label}/{tsb_path(path)}" if path != "m" else label
        got = attributes(client, key_name)
        assert got["extendedPublicKey"] == xpub, path
        published = BIP32.from_xpub(xpub)  # python-bip32 decodes the published key
        assert raw_public_key(got["publicKey"]) == published.pubkey, path
        assert got["derivedAttributes"]["derivationValue"] == published.chaincode.hex().upper(), path
        assert BIP32.from_xpriv(xprv).get_xpub() == xpub  # the data file is self-consistent


@pytest.mark.parametrize(("curve", "seed", "chain"), _slip10_cases(), ids=lambda v: v if isinstance(v, str)
                         and len(v) < 12 else "")
def test_slip10_vectors(client: httpx.Client, curve: str, seed: str, chain: list[list[str]]) -> None:
    label = unique(f"slip10-{curve}")
    import_seed(client, label, bytes.fromhex(seed), CURVE_OIDS[curve])
    for path, _parent_fingerprint, chain_code, _private, public in chain:
        key_name = f"{label}/{tsb_path(path)}" if path != "m" else label
        got = attributes(client, key_name)
        expected = bytes.fromhex(public)
        if curve == "ed25519":
            expected = expected[1:]  # SLIP-0010 prefixes the 32-byte key with 0x00
        assert raw_public_key(got["publicKey"]) == expected, path
        assert got["derivedAttributes"] == {
            "derivationType": "ADA/SLIP-10" if curve == "ed25519" else "SLIP-10",
            "derivationValue": chain_code.upper()}, path
    # the last child signs; the signature is checked against the published public key
    path, _, _, _, public = chain[-1]
    key_name = f"{label}/{tsb_path(path)}" if path != "m" else label
    payload = b"slip-10 vector signature"
    algorithm = "EDDSA" if curve == "ed25519" else "SHA256_WITH_ECDSA"
    signed = client.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(payload), "signKeyName": key_name, "signatureAlgorithm": algorithm}})
    assert signed.status_code == 200, signed.text
    signature = base64.b64decode(signed.json()["signature"])
    if curve == "ed25519":
        ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)[1:]).verify(signature, payload)
    else:
        named = ec.SECP256K1() if curve == "secp256k1" else ec.SECP256R1()
        ec.EllipticCurvePublicKey.from_encoded_point(named, bytes.fromhex(public)).verify(
            signature, payload, ec.ECDSA(hashes.SHA256()))
