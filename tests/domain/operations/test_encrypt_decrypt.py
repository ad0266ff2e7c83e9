"""POST /v1/encrypt and /v1/synchronousDecrypt, checked against independent implementations.

RSA: ``openssl pkeyutl`` encrypts with the public key hsmgate returned and hsmgate decrypts; the
reverse uses an exportable key (hsmgate encrypts, ``openssl pkeyutl`` decrypts with the exported
private key). Symmetric ciphers: ``cryptography`` on the exported key, in both directions. How each
cipher works is written here from the *documented decisions* (README), not read from hsmgate.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import Camellia, TripleDES
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.helpers import assert_tsb_error, b64, unb64
from tests.domain.operations.helpers import CLOSED, OPEN, create_key, export, openssl, public_key_der

# ---------------------------------------------------------------------------------------------
# an independent reference implementation of every symmetric cipherAlgorithm


@dataclass(frozen=True)
class Sym:
    name: str
    family: str  # the key algorithm
    mode: str  # gcm, ctr, ecb, cbc, chacha, chacha-aead
    padded: bool = False

    @property
    def iv_bytes(self) -> int | None:
        if self.mode in ("gcm", "chacha", "chacha-aead"):
            return 12
        if self.mode == "ecb":
            return None
        return 8 if self.family == "TDEA" else 16

    def _algorithm(self, key: bytes) -> Any:
        return {"AES": algorithms.AES, "Camellia": Camellia, "TDEA": TripleDES}[self.family](key)

    def encrypt(self, key: bytes, iv: bytes | None, data: bytes, aad: bytes | None = None, tag_bytes: int = 16) -> bytes:
        if self.mode == "gcm":
            enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
            if aad:
                enc.authenticate_additional_data(aad)
            ct = enc.update(data) + enc.finalize()
            return ct + enc.tag[:tag_bytes]
        if self.mode == "chacha-aead":
            return ChaCha20Poly1305(key).encrypt(iv, data, aad)
        if self.mode == "chacha":  # RFC 8439 §2.4, block counter starting at 1
            enc = Cipher(algorithms.ChaCha20(key, struct.pack("<I", 1) + iv), mode=None).encryptor()
            return enc.update(data) + enc.finalize()
        algorithm = self._algorithm(key)
        if self.padded:
            padder = sym_padding.PKCS7(algorithm.block_size).padder()
            data = padder.update(data) + padder.finalize()
        mode = {"ecb": lambda: modes.ECB(), "cbc": lambda: modes.CBC(iv), "ctr": lambda: modes.CTR(iv)}[self.mode]()
        enc = Cipher(algorithm, mode).encryptor()
        return enc.update(data) + enc.finalize()

    def decrypt(self, key: bytes, iv: bytes | None, data: bytes, aad: bytes | None = None, tag_bytes: int = 16) -> bytes:
        if self.mode == "gcm":
            dec = Cipher(algorithms.AES(key), modes.GCM(iv, data[-tag_bytes:], min_tag_length=tag_bytes)).decryptor()
            if aad:
                dec.authenticate_additional_data(aad)
            return dec.update(data[:-tag_bytes]) + dec.finalize()
        if self.mode == "chacha-aead":
            return ChaCha20Poly1305(key).decrypt(iv, data, aad)
        if self.mode == "chacha":
            return self.encrypt(key, iv, data)
        algorithm = self._algorithm(key)
        mode = {"ecb": lambda: modes.ECB(), "cbc": lambda: modes.CBC(iv), "ctr": lambda: modes.CTR(iv)}[self.mode]()
        dec = Cipher(algorithm, mode).decryptor()
        out = dec.update(data) + dec.finalize()
        if self.padded:
            unpadder = sym_padding.PKCS7(algorithm.block_size).unpadder()
            out = unpadder.update(out) + unpadder.finalize()
        return out


SYMMETRIC = [
    Sym("AES_GCM", "AES", "gcm"),
    Sym("AES_CTR", "AES", "ctr"),
    Sym("AES_ECB", "AES", "ecb"),
    Sym("AES_CBC_NO_PADDING", "AES", "cbc"),
    Sym("AES", "AES", "ecb", padded=True),
    Sym("CHACHA20", "ChaCha20", "chacha"),
    Sym("CHACHA20_AEAD", "ChaCha20", "chacha-aead"),
    Sym("CAMELLIA", "Camellia", "cbc", padded=True),
    Sym("CAMELLIA_CBC_NO_PADDING", "Camellia", "cbc"),
    Sym("CAMELLIA_ECB", "Camellia", "ecb"),
    Sym("TDEA_CBC", "TDEA", "cbc", padded=True),
    Sym("TDEA_ECB", "TDEA", "ecb"),
    Sym("TDEA_CBC_NO_PADDING", "TDEA", "cbc"),
]
AEAD = {"AES_GCM", "CHACHA20_AEAD"}
KEY_BODIES = {"AES": {"algorithm": "AES", "keySize": 256}, "ChaCha20": {"algorithm": "ChaCha20"},
              "Camellia": {"algorithm": "Camellia", "keySize": 128}, "TDEA": {"algorithm": "TDEA"}}


@pytest.fixture(scope="module")
def secret_keys(http: httpx.Client) -> dict[str, tuple[str, bytes]]:
    """One extractable key per symmetric family: label and exported raw bytes."""
    out = {}
    for family, body in KEY_BODIES.items():
        label = create_key(http, body, prefix=f"sym-{family}")
        out[family] = (label, export(http, label)["secretKey"])
    return out


def encrypt(http: httpx.Client, label: str, algorithm: str, payload: bytes, **extra: Any) -> httpx.Response:
    return http.post("/v1/encrypt", json={"encryptRequest": {
        "payload": b64(payload), "encryptKeyName": label, "cipherAlgorithm": algorithm, **extra}})


def decrypt(http: httpx.Client, label: str, algorithm: str, ciphertext: bytes, iv: bytes | None = None,
            **extra: Any) -> httpx.Response:
    request = {"encryptedPayload": b64(ciphertext), "decryptKeyName": label, "cipherAlgorithm": algorithm, **extra}
    if iv is not None:
        request["initializationVector"] = b64(iv)
    return http.post("/v1/synchronousDecrypt", json={"decryptRequest": request})


@pytest.mark.parametrize("cipher", SYMMETRIC, ids=lambda c: c.name)
def test_symmetric_cipher_matches_cryptography(http: httpx.Client, secret_keys: dict[str, tuple[str, bytes]],
                                               cipher: Sym) -> None:
    label, key = secret_keys[cipher.family]
    aad = b"header" if cipher.name in AEAD else None
    extra = {"additionalAuthenticationData": b64(aad)} if aad else {}
    payload = os.urandom(32)  # a multiple of every block size, so the no-padding modes take it too

    # hsmgate encrypts, cryptography decrypts
    response = encrypt(http, label, cipher.name, payload, **extra)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"encryptedPayload", "encryptedPayloadWithoutMessageAuthenticationCode",
                         "initializationVector", "messageAuthenticationCode"}
    iv = unb64(body["initializationVector"]) if body["initializationVector"] else None
    assert (len(iv) if iv else None) == cipher.iv_bytes
    encrypted = unb64(body["encryptedPayload"])
    without_mac = unb64(body["encryptedPayloadWithoutMessageAuthenticationCode"])
    if cipher.name in AEAD:
        mac = unb64(body["messageAuthenticationCode"])
        assert len(mac) == 16 and encrypted == without_mac + mac
    else:
        assert body["messageAuthenticationCode"] is None and encrypted == without_mac
    assert cipher.decrypt(key, iv, encrypted, aad) == payload

    # cryptography encrypts (an odd length where the mode allows it), hsmgate decrypts
    odd = os.urandom(13) if cipher.padded or cipher.mode in ("ctr", "chacha", "chacha-aead", "gcm") else os.urandom(16)
    fresh_iv = os.urandom(cipher.iv_bytes) if cipher.iv_bytes else None
    response = decrypt(http, label, cipher.name, cipher.encrypt(key, fresh_iv, odd, aad), fresh_iv, **extra)
    assert response.status_code == 200, response.text
    assert unb64(response.json()["payload"]) == odd


def test_gcm_tag_length_is_honoured(http: httpx.Client, secret_keys: dict[str, tuple[str, bytes]]) -> None:
    label, key = secret_keys["AES"]
    gcm = SYMMETRIC[0]
    for bits in (64, 96, 104, 112, 120, 128):
        response = encrypt(http, label, "AES_GCM", b"tag length", tagLength=bits)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(unb64(body["messageAuthenticationCode"])) == bits // 8
        iv, encrypted = unb64(body["initializationVector"]), unb64(body["encryptedPayload"])
        assert gcm.decrypt(key, iv, encrypted, tag_bytes=bits // 8) == b"tag length"
        back = decrypt(http, label, "AES_GCM", encrypted, iv, tagLength=bits)
        assert unb64(back.json()["payload"]) == b"tag length"
    # tagLength 0 is the default 128 bits
    assert len(unb64(encrypt(http, label, "AES_GCM", b"x", tagLength=0).json()["messageAuthenticationCode"])) == 16
    for bad in (100, 32, 256, -8):
        assert_tsb_error(encrypt(http, label, "AES_GCM", b"x", tagLength=bad), 624, 400)
    chacha_label, _ = secret_keys["ChaCha20"]
    assert_tsb_error(encrypt(http, chacha_label, "CHACHA20_AEAD", b"x", tagLength=96), 624, 400)


@pytest.mark.parametrize("damage", ["tag", "ciphertext", "iv", "aad", "key"])
@pytest.mark.parametrize("algorithm", ["AES_GCM", "CHACHA20_AEAD"])
def test_damaged_aead_input_is_410_never_plaintext(http: httpx.Client, secret_keys: dict[str, tuple[str, bytes]],
                                                   algorithm: str, damage: str) -> None:
    family = "AES" if algorithm == "AES_GCM" else "ChaCha20"
    label, _ = secret_keys[family]
    body = encrypt(http, label, algorithm, b"secret payload", additionalAuthenticationData=b64(b"aad")).json()
    encrypted = bytearray(unb64(body["encryptedPayload"]))
    iv = bytearray(unb64(body["initializationVector"]))
    aad = b"aad"
    if damage == "tag":
        encrypted[-1] ^= 1
    elif damage == "ciphertext":
        encrypted[0] ^= 0x80
    elif damage == "iv":
        iv[0] ^= 1
    elif damage == "aad":
        aad = b"aae"
    else:
        label = create_key(http, KEY_BODIES[family], prefix="other")
    response = decrypt(http, label, algorithm, bytes(encrypted), bytes(iv), additionalAuthenticationData=b64(aad))
    body = assert_tsb_error(response, 410, 400)
    assert body["reason"] == "res.error.decrypt.failed"
    assert "secret payload" not in response.text


def test_truncated_aead_payload_and_bad_padding_are_410(http: httpx.Client,
                                                        secret_keys: dict[str, tuple[str, bytes]]) -> None:
    label, key = secret_keys["AES"]
    assert_tsb_error(decrypt(http, label, "AES_GCM", b"short", os.urandom(12)), 410, 400)
    # plain AES (ECB + PKCS#7): a block whose last byte is no valid padding
    block = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(b"\x00" * 15 + b"\x11")
    assert_tsb_error(decrypt(http, label, "AES", block), 410, 400)
    # no-padding CBC: a ciphertext that is not block aligned, an IV of the wrong size
    assert_tsb_error(decrypt(http, label, "AES_CBC_NO_PADDING", os.urandom(20), os.urandom(16)), 410, 400)
    assert_tsb_error(decrypt(http, label, "AES_CBC_NO_PADDING", os.urandom(32), os.urandom(8)), 410, 400)


# ---------------------------------------------------------------------------------------------
# RSA with openssl pkeyutl

RSA_CASES = {  # cipherAlgorithm → pkeyutl options
    "RSA": ["-pkeyopt", "rsa_padding_mode:pkcs1"],
    "RSA_PADDING_PKCS": ["-pkeyopt", "rsa_padding_mode:pkcs1"],
    "RSA_PADDING_OAEP": ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1",
                         "-pkeyopt", "rsa_mgf1_md:sha1"],
    **{f"RSA_PADDING_OAEP_WITH_SHA{n}": ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:sha{n}",
                                         "-pkeyopt", f"rsa_mgf1_md:sha{n}"] for n in (1, 224, 256, 384, 512)},
    "RSA_NO_PADDING": ["-pkeyopt", "rsa_padding_mode:none"],
}


@pytest.fixture(scope="module")
def rsa_closed(http: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A non-extractable RSA-2048 decryption key and its public key (DER file)."""
    label = create_key(http, {"algorithm": "RSA", "keySize": 2048}, CLOSED, prefix="rsa-closed")
    path = tmp_path_factory.mktemp("rsa") / "public.der"
    path.write_bytes(public_key_der(http, label))
    return label, path


@pytest.fixture(scope="module")
def rsa_open(http: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """An extractable RSA-2048 key and its exported private key (PKCS#8 DER file)."""
    label = create_key(http, {"algorithm": "RSA", "keySize": 2048}, OPEN, prefix="rsa-open")
    path = tmp_path_factory.mktemp("rsa") / "private.der"
    path.write_bytes(export(http, label)["privateKey"] or b"")
    return label, path


def _message(algorithm: str) -> bytes:
    if algorithm == "RSA_NO_PADDING":  # a whole modulus-sized block, below the modulus
        return b"\x00" * 200 + os.urandom(56)
    return os.urandom(48)


@pytest.mark.subprocess
@pytest.mark.parametrize("algorithm", list(RSA_CASES))
def test_openssl_encrypts_hsmgate_decrypts(http: httpx.Client, rsa_closed: tuple[str, Path], tmp_path: Path,
                                           algorithm: str) -> None:
    label, public = rsa_closed
    message = _message(algorithm)
    (tmp_path / "msg").write_bytes(message)
    openssl("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", str(public), "-in", "msg", "-out", "ct",
            *RSA_CASES[algorithm], cwd=tmp_path)
    response = decrypt(http, label, algorithm, (tmp_path / "ct").read_bytes())
    assert response.status_code == 200, response.text
    assert unb64(response.json()["payload"]) == message  # RSA_NO_PADDING: the full 256-byte block


@pytest.mark.subprocess
@pytest.mark.parametrize("algorithm", list(RSA_CASES))
def test_hsmgate_encrypts_openssl_decrypts(http: httpx.Client, rsa_open: tuple[str, Path], tmp_path: Path,
                                           algorithm: str) -> None:
    label, private = rsa_open
    message = b"short plaintext" if algorithm == "RSA_NO_PADDING" else _message(algorithm)
    response = encrypt(http, label, algorithm, message)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["encryptedPayloadWithoutMessageAuthenticationCode"] is None
    assert body["initializationVector"] is None and body["messageAuthenticationCode"] is None
    (tmp_path / "ct").write_bytes(unb64(body["encryptedPayload"]))
    openssl("pkeyutl", "-decrypt", "-keyform", "DER", "-inkey", str(private), "-in", "ct", "-out", "pt",
            *RSA_CASES[algorithm], cwd=tmp_path)
    plain = (tmp_path / "pt").read_bytes()
    if algorithm == "RSA_NO_PADDING":  # the payload as a big-endian number: left-padded to 256 bytes
        assert plain == message.rjust(256, b"\x00")
    else:
        assert plain == message


def test_damaged_oaep_ciphertext_is_410(http: httpx.Client, rsa_open: tuple[str, Path]) -> None:
    label, _ = rsa_open
    ciphertext = bytearray(unb64(encrypt(http, label, "RSA_PADDING_OAEP_WITH_SHA256", b"x").json()["encryptedPayload"]))
    ciphertext[10] ^= 1
    assert_tsb_error(decrypt(http, label, "RSA_PADDING_OAEP_WITH_SHA256", bytes(ciphertext)), 410, 400)
    assert_tsb_error(decrypt(http, label, "RSA_PADDING_OAEP_WITH_SHA256", b"too short"), 410, 400)


def test_rsa_payload_too_long_is_612(http: httpx.Client, rsa_open: tuple[str, Path]) -> None:
    label, _ = rsa_open
    assert_tsb_error(encrypt(http, label, "RSA", os.urandom(246)), 612, 400)  # PKCS#1 v1.5 takes 245 bytes
    assert_tsb_error(
        encrypt(http, label, "RSA_PADDING_OAEP_WITH_SHA512", os.urandom(127)), 612, 400)  # 256-130
    assert_tsb_error(encrypt(http, label, "RSA_NO_PADDING", b"\xff" * 256), 612, 400)  # not below the modulus


# ---------------------------------------------------------------------------------------------
# request validation and key checks


def test_mismatches_and_missing_fields(http: httpx.Client, secret_keys: dict[str, tuple[str, bytes]],
                                       rsa_open: tuple[str, Path]) -> None:
    aes, _ = secret_keys["AES"]
    rsa, _ = rsa_open
    body = assert_tsb_error(encrypt(http, rsa, "AES_GCM", b"x"), 607, 400)
    assert "AES" in body["message"]
    assert_tsb_error(encrypt(http, aes, "RSA_PADDING_OAEP", b"x"), 607, 400)
    assert_tsb_error(
        encrypt(http, secret_keys["Camellia"][0], "AES_CBC_NO_PADDING", os.urandom(16)), 607, 400)
    body = assert_tsb_error(decrypt(http, aes, "AES_CBC_NO_PADDING", os.urandom(16)), 600, 400)
    assert "initializationVector" in body["message"]
    assert_tsb_error(encrypt(http, aes, "AES_CBC_NO_PADDING", os.urandom(13)), 612, 400)
    body = assert_tsb_error(
        encrypt(http, aes, "AES_CTR", b"x", additionalAuthenticationData=b64(b"a")), 600, 400)
    assert "additionalAuthenticationData" in body["message"]
    body = assert_tsb_error(encrypt(http, aes, "AES_SIV", b"x"), 600, 400)
    assert "Value 'AES_SIV' is not valid" in body["message"]
    assert_tsb_error(encrypt(http, "no-such-key", "AES_GCM", b"x"), 650, 404)


def test_attributes_govern_encrypt_and_decrypt(http: httpx.Client) -> None:
    # encrypt defaults to decrypt: a key made to decrypt may encrypt, one made only to sign may not
    decrypting = create_key(http, {"algorithm": "AES", "keySize": 128},
                            {"sign": False, "decrypt": True, "unwrap": False})
    assert encrypt(http, decrypting, "AES_GCM", b"x").status_code == 200
    signing = create_key(http, {"algorithm": "AES", "keySize": 128}, {"sign": True, "decrypt": False, "unwrap": False})
    body = assert_tsb_error(encrypt(http, signing, "AES_GCM", b"x"), 701, 400)
    assert body["message"].startswith("KEY_FUNCTION_NOT_PERMITTED")
    # an explicit encrypt: false wins over decrypt: true
    no_encrypt = create_key(http, {"algorithm": "AES", "keySize": 128},
                            {"sign": False, "decrypt": True, "unwrap": False, "encrypt": False})
    assert_tsb_error(encrypt(http, no_encrypt, "AES_GCM", b"x"), 701, 400)
    # encrypt: true, decrypt: false: encryption only
    only_encrypt = create_key(http, {"algorithm": "AES", "keySize": 128},
                              {"sign": True, "decrypt": False, "unwrap": False, "encrypt": True})
    body = encrypt(http, only_encrypt, "AES_GCM", b"x").json()
    response = decrypt(http, only_encrypt, "AES_GCM", unb64(body["encryptedPayload"]),
                       unb64(body["initializationVector"]))
    assert assert_tsb_error(response, 701, 400)["message"].startswith("KEY_FUNCTION_NOT_PERMITTED")
