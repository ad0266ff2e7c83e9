"""Acceptance, over HTTP: import a seed, derive m/44'/60'/0'/0/0 and m/44'/0'/0'/0/0, read their ETH
and BTC addresses, sign with ECDSA and BIP-340, and check everything with other libraries.

The seed is BIP-39's "abandon … about" (no passphrase), whose addresses wallets publish. Keys are
derived a second time here by python-bip32 (independent of the bip-utils hsmgate derives with),
address bytes and text are recomputed with bip-utils' encoders from that independent key, and
signatures are checked with ``cryptography`` (ECDSA, Ethereum recovery through coincurve) and
libsecp256k1 (BIP-340). docs/derivation.md walks through the same requests.
"""

from __future__ import annotations

import base64
import hashlib

import coincurve
import httpx
from bip32 import BIP32
from bip_utils import EthAddrEncoder, P2WPKHAddrEncoder
from Crypto.Hash import RIPEMD160, keccak
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tests.domain.derivation.helpers import SECP256K1, attributes, b64, raw_public_key
from tests.helpers import unique

MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
SEED = hashlib.pbkdf2_hmac("sha512", MNEMONIC.encode(), b"mnemonic", 2048)  # BIP-39
ETH_PATH, BTC_PATH = "44'/60'/0'/0/0", "44'/0'/0'/0/0"
#: What wallets show for this seed: MetaMask's first account, and BIP-84's vector (m/84'/0'/0'/0/0).
KNOWN_ETH_ADDRESS = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
KNOWN_BIP84_ADDRESS = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
EMPTY_POLICY = {"ruleUse": None, "ruleBlock": None, "ruleUnblock": None, "ruleModify": None,
                "keyStatus": {"blocked": False}}


def master(http: httpx.Client, address_format: str) -> str:
    label = unique(f"wallet-{address_format.lower()}")
    response = http.post("/v1/importedKey", json={
        "label": label, "seed": b64(SEED), "curveOid": SECP256K1, "addressFormat": {"format": address_format},
        "attributes": {"sign": True, "decrypt": False, "unwrap": False, "derive": True, "bip32": True},
        "policy": EMPTY_POLICY})
    assert response.status_code == 201, response.text
    return label


def test_wallet_walkthrough(client: httpx.Client) -> None:
    independent = BIP32.from_seed(SEED)
    eth_master, btc_master = master(client, "ETH"), master(client, "BTC")
    eth_key, btc_key = f"{eth_master}/{ETH_PATH}", f"{btc_master}/{BTC_PATH}"

    # the derived public keys are python-bip32's
    eth_public = independent.get_pubkey_from_path(f"m/{ETH_PATH}")
    btc_public = independent.get_pubkey_from_path(f"m/{BTC_PATH}")
    assert raw_public_key(attributes(client, eth_key)["publicKey"]) == eth_public
    assert raw_public_key(attributes(client, btc_key)["publicKey"]) == btc_public

    # addresses: POST and GET, the TSB hash and hsmgate's text form
    eth_address = client.post("/v1/key/address", json={"label": eth_key}).json()
    assert client.get(f"/v1/key/{eth_key}/address").json() == eth_address
    point = coincurve.PublicKey(eth_public).format(compressed=False)
    assert base64.b64decode(eth_address["address"]) == keccak.new(digest_bits=256, data=point[1:]).digest()[-20:]
    assert eth_address["addressText"] == EthAddrEncoder.EncodeKey(point) == KNOWN_ETH_ADDRESS
    btc_address = client.post("/v1/key/address", json={"label": btc_key}).json()
    assert base64.b64decode(btc_address["address"]) == RIPEMD160.new(hashlib.sha256(btc_public).digest()).digest()
    assert btc_address["addressText"] == P2WPKHAddrEncoder.EncodeKey(btc_public, hrp="bc", wit_ver=0)
    bip84 = client.post("/v1/key/address", json={"label": f"{btc_master}/84'/0'/0'/0/0"}).json()
    assert bip84["addressText"] == KNOWN_BIP84_ADDRESS

    # Ethereum: KECCAK256_WITH_ECDSA with signatureType ETH; the address recovers from r‖s‖v
    transaction = b"an Ethereum transaction to sign"
    eth_signature = base64.b64decode(client.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(transaction), "signKeyName": eth_key, "signatureAlgorithm": "KECCAK256_WITH_ECDSA",
        "signatureType": "ETH"}}).json()["signature"])
    digest = keccak.new(digest_bits=256, data=transaction).digest()
    recovered = coincurve.PublicKey.from_signature_and_message(
        eth_signature[:64] + bytes([eth_signature[64] - 27]), digest, hasher=None)
    assert EthAddrEncoder.EncodeKey(recovered.format(compressed=False)) == KNOWN_ETH_ADDRESS

    # Bitcoin: ECDSA over a double SHA-256, checked by cryptography with the independent key
    btc_signature = base64.b64decode(client.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(transaction), "signKeyName": btc_key, "signatureAlgorithm": "DOUBLE_SHA256_WITH_ECDSA"}})
        .json()["signature"])
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), btc_public)
    verifier.verify(btc_signature, hashlib.sha256(hashlib.sha256(transaction).digest()).digest(),
                    ec.ECDSA(Prehashed(hashes.SHA256())))

    # BIP-340 with the same key, checked by libsecp256k1 against its x-only form
    sighash = hashlib.sha256(b"a taproot sighash").digest()
    schnorr = base64.b64decode(client.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(sighash), "signKeyName": btc_key, "signatureAlgorithm": "NONE_WITH_EC_SCHNORR_BIP0340"}})
        .json()["signature"])
    assert coincurve.PublicKeyXOnly(btc_public[1:]).verify(schnorr, sighash)
    verified = client.post("/v1/verify", json={"verifySignatureRequest": {
        "signKeyName": btc_key, "signatureAlgorithm": "NONE_WITH_EC_SCHNORR_BIP0340", "payload": b64(sighash),
        "signature": b64(schnorr)}})
    assert verified.json() == {"signatureValid": True}


def test_address_refusals(client: httpx.Client) -> None:
    plain = unique("wallet-plain")
    response = client.post("/v1/importedKey", json={
        "label": plain, "seed": b64(SEED), "curveOid": SECP256K1,
        "attributes": {"sign": True, "decrypt": False, "unwrap": False, "derive": True, "bip32": True}})
    assert response.status_code == 201
    for name in (plain, f"{plain}/{BTC_PATH}"):
        refused = client.post("/v1/key/address", json={"label": name})
        assert refused.status_code == 400 and refused.json()["errorCode"] == 630, refused.text
    unknown = client.post("/v1/importedKey", json={
        "label": unique("wallet-xrp"), "seed": b64(SEED), "curveOid": SECP256K1, "addressFormat": {"format": "XRP"},
        "attributes": {"sign": True, "decrypt": False, "unwrap": False, "derive": True, "bip32": True},
        "policy": EMPTY_POLICY})
    assert unknown.status_code == 400 and unknown.json()["errorCode"] == 605, unknown.text
