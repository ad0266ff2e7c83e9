"""Optional operations of Pkcs11Partition against SoftHSM2, each checked independently with ``cryptography``:
test keys are extractable and non-sensitive so their material can be exported and used on the other side."""

from __future__ import annotations

import hmac as std_hmac
import secrets
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsmgate.hsm.base import (
    CipherMechanism,
    CipherMode,
    DecryptFailed,
    HashAlg,
    InvalidInput,
    KeyAttributes,
    KeyExists,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    SignMechanism,
    SignScheme,
    UnsupportedByBackend,
    WrapMechanism,
    WrapMode,
)
from hsmgate.hsm.pkcs11 import Pkcs11Partition
from hsmgate.hsm.softcipher import strip_der_padding
from tests.softhsm import SoftHsmToken

pytest_plugins = ["tests.softhsm_fixtures"]
pytestmark = pytest.mark.pkcs11

OPEN = KeyAttributes(encrypt=True, decrypt=True, wrap=True, unwrap=True, sign=True, verify=True,
                     extractable=True, sensitive=False, destroyable=True)
P256 = "1.2.840.10045.3.1.7"


def label(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def partition(softhsm_factory: Callable[[str], SoftHsmToken]) -> Iterator[Pkcs11Partition]:
    token = softhsm_factory("unit-pkcs11-ops")
    part = Pkcs11Partition("ops", module_path=token.module_path, token_label=token.token_label, pin=token.pin)
    yield part
    part.close()


@pytest.fixture(scope="module")
def keys(partition: Pkcs11Partition) -> dict[KeyType, str]:
    out = {}
    for key_type, spec in ((KeyType.AES, KeySpec(KeyType.AES, 256)), (KeyType.TDEA, KeySpec(KeyType.TDEA, 192)),
                           (KeyType.RSA, KeySpec(KeyType.RSA, 2048)),
                           (KeyType.HMAC_SHA256, KeySpec(KeyType.HMAC_SHA256, 256))):
        out[key_type] = label(f"k-{key_type}")
        partition.generate(out[key_type], spec, OPEN)
    return out


def test_declared_matrix_on_softhsm(partition: Pkcs11Partition) -> None:
    caps = partition.capabilities()
    assert caps.can_encrypt(KeyType.RSA, CipherMechanism(CipherMode.RSA_OAEP, HashAlg.SHA1))
    assert not caps.can_encrypt(KeyType.RSA, CipherMechanism(CipherMode.RSA_OAEP, HashAlg.SHA256))  # SoftHSM2 limit
    assert caps.can_encrypt(KeyType.AES, CipherMechanism(CipherMode.AES_GCM, tag_bits=96))
    assert caps.can_encrypt(KeyType.TDEA, CipherMechanism(CipherMode.TDEA_CBC_PAD))
    assert not caps.can_encrypt(KeyType.CHACHA20, CipherMechanism(CipherMode.CHACHA20))
    assert caps.can_wrap(KeyType.AES, WrapMechanism(WrapMode.AES_KWP))
    assert not caps.can_wrap(KeyType.RSA, WrapMechanism(WrapMode.RSA_OAEP, HashAlg.SHA256))
    assert KeyType.HMAC_SHA512 in caps.hmac and KeyType.TDEA in caps.key_specs


def _software_decrypt(key_type: KeyType, secret: bytes, mode: CipherMode, ct: bytes, iv: bytes | None,
                      tag: bytes | None, aad: bytes | None) -> bytes:
    if mode is CipherMode.AES_GCM:
        assert iv is not None and tag is not None and len(tag) == 16
        return AESGCM(secret).decrypt(iv, ct + tag, aad)
    algorithm = algorithms.AES(secret) if key_type is KeyType.AES else TripleDES(secret)
    name = mode.value.split("-")[1]
    chaining = {"CBC": modes.CBC(iv or b""), "CTR": modes.CTR(iv or b""), "ECB": modes.ECB()}[name]
    decryptor = Cipher(algorithm, chaining).decryptor()
    plain = decryptor.update(ct) + decryptor.finalize()
    if mode.value.endswith("PAD"):
        unpadder = sym_padding.PKCS7(algorithm.block_size).unpadder()
        plain = unpadder.update(plain) + unpadder.finalize()
    return plain


def test_each_declared_symmetric_cipher_matches_cryptography(partition: Pkcs11Partition,
                                                              keys: dict[KeyType, str]) -> None:
    checked = 0
    for key_type, mechanism in sorted(partition.capabilities().cipher, key=str):
        if key_type not in (KeyType.AES, KeyType.TDEA) or (mechanism.tag_bits not in (None, 128)):
            continue
        secret = partition.export_key(keys[key_type]).secret_key
        assert secret is not None
        data = secrets.token_bytes(32)
        aad = b"header" if mechanism.mode is CipherMode.AES_GCM else None
        result = partition.encrypt(keys[key_type], mechanism, data, aad=aad)
        expected_iv = {CipherMode.AES_GCM: 12, CipherMode.AES_ECB: None, CipherMode.AES_ECB_PAD: None,
                       CipherMode.TDEA_ECB: None}.get(mechanism.mode, 8 if key_type is KeyType.TDEA else 16)
        assert (len(result.iv) if result.iv else None) == expected_iv, mechanism
        assert _software_decrypt(key_type, secret, mechanism.mode, result.ciphertext, result.iv, result.tag,
                                 aad) == data, mechanism
        assert partition.decrypt(keys[key_type], mechanism, result.ciphertext, iv=result.iv, aad=aad,
                                 tag=result.tag) == data
        checked += 1
    assert checked >= 9


def test_gcm_short_tag_and_tampering(partition: Pkcs11Partition, keys: dict[KeyType, str]) -> None:
    mechanism = CipherMechanism(CipherMode.AES_GCM, tag_bits=96)
    result = partition.encrypt(keys[KeyType.AES], mechanism, b"payload", aad=b"a")
    assert result.tag is not None and len(result.tag) == 12
    assert partition.decrypt(keys[KeyType.AES], mechanism, result.ciphertext, iv=result.iv, aad=b"a",
                             tag=result.tag) == b"payload"
    bad_tag = bytes([result.tag[0] ^ 1]) + result.tag[1:]
    with pytest.raises(DecryptFailed):
        partition.decrypt(keys[KeyType.AES], mechanism, result.ciphertext, iv=result.iv, aad=b"a", tag=bad_tag)
    with pytest.raises(DecryptFailed):
        partition.decrypt(keys[KeyType.AES], mechanism, result.ciphertext, iv=result.iv, aad=b"b", tag=result.tag)


def test_rsa_ciphers_against_cryptography(partition: Pkcs11Partition, keys: dict[KeyType, str]) -> None:
    name = keys[KeyType.RSA]
    exported = partition.export_key(name)
    private = serialization.load_der_private_key(exported.private_key or b"", None)
    assert isinstance(private, rsa.RSAPrivateKey)
    public = private.public_key()
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    # encrypted by cryptography, decrypted by the token
    assert partition.decrypt(name, CipherMechanism(CipherMode.RSA_OAEP, HashAlg.SHA1),
                             public.encrypt(b"secret", oaep)) == b"secret"
    assert partition.decrypt(name, CipherMechanism(CipherMode.RSA_PKCS1V15),
                             public.encrypt(b"secret", padding.PKCS1v15())) == b"secret"
    # encrypted by the token, decrypted by cryptography
    ct = partition.encrypt(name, CipherMechanism(CipherMode.RSA_OAEP, HashAlg.SHA1), b"data").ciphertext
    assert private.decrypt(ct, oaep) == b"data"
    raw = CipherMechanism(CipherMode.RSA_RAW)
    ct = partition.encrypt(name, raw, b"\x01\x02\x03").ciphertext
    assert len(ct) == 256
    block = partition.decrypt(name, raw, ct)
    assert len(block) == 256 and block.endswith(b"\x01\x02\x03") and not any(block[:-3])
    with pytest.raises(UnsupportedByBackend):
        partition.encrypt(name, CipherMechanism(CipherMode.RSA_OAEP, HashAlg.SHA256), b"x")
    with pytest.raises(DecryptFailed):
        partition.decrypt(name, CipherMechanism(CipherMode.RSA_OAEP, HashAlg.SHA1), bytes(256))


def test_attributes_are_enforced(partition: Pkcs11Partition) -> None:
    name = label("enc-only")
    partition.generate(name, KeySpec(KeyType.AES, 128), KeyAttributes(encrypt=True, decrypt=False))
    ecb = CipherMechanism(CipherMode.AES_ECB)
    ct = partition.encrypt(name, ecb, bytes(16)).ciphertext
    with pytest.raises(OperationNotPermitted):
        partition.decrypt(name, ecb, ct)
    with pytest.raises(InvalidInput, match="multiple"):
        partition.encrypt(name, ecb, bytes(13))
    with pytest.raises(InvalidInput):
        partition.encrypt(name, ecb, bytes(16), iv=bytes(16))


def test_aes_wraps_are_rfc_3394_and_5649(partition: Pkcs11Partition, keys: dict[KeyType, str]) -> None:
    kek = partition.export_key(keys[KeyType.AES]).secret_key or b""
    target = label("target")
    partition.generate(target, KeySpec(KeyType.AES, 192), OPEN)
    material = partition.export_key(target).secret_key
    blob = partition.wrap(keys[KeyType.AES], WrapMechanism(WrapMode.AES_KW), target)
    assert keywrap.aes_key_unwrap(kek, blob) == material
    blob = partition.wrap(keys[KeyType.AES], WrapMechanism(WrapMode.AES_KWP), target)
    assert keywrap.aes_key_unwrap_with_padding(kek, blob) == material
    # a blob made by cryptography unwraps on the token, into a key that encrypts like the original
    foreign = secrets.token_bytes(16)
    name = label("unwrapped")
    info = partition.unwrap(keys[KeyType.AES], WrapMechanism(WrapMode.AES_KWP),
                            keywrap.aes_key_wrap_with_padding(kek, foreign), label=name,
                            spec=KeySpec(KeyType.AES), attributes=OPEN)
    assert info.size == 128 and info.key_id and not info.attributes.always_sensitive
    assert partition.export_key(name).secret_key == foreign
    with pytest.raises(KeyExists):
        partition.unwrap(keys[KeyType.AES], WrapMechanism(WrapMode.AES_KWP),
                         keywrap.aes_key_wrap_with_padding(kek, foreign), label=name,
                         spec=KeySpec(KeyType.AES), attributes=OPEN)
    with pytest.raises(DecryptFailed):
        partition.unwrap(keys[KeyType.AES], WrapMechanism(WrapMode.AES_KW), bytes(24), label=label("bad"),
                         spec=KeySpec(KeyType.AES), attributes=OPEN)


def test_private_keys_wrap_as_pkcs8(partition: Pkcs11Partition, keys: dict[KeyType, str]) -> None:
    kek = partition.export_key(keys[KeyType.AES]).secret_key or b""
    ec_label = label("ec")
    partition.generate(ec_label, KeySpec(KeyType.EC, curve_oid=P256), OPEN)
    blob = partition.wrap(keys[KeyType.AES], WrapMechanism(WrapMode.AES_KWP), ec_label)
    # SoftHSM2 zero-pads the PKCS#8 DER to a multiple of 8 bytes even for RFC 5649; DER is self-delimiting
    private = serialization.load_der_private_key(strip_der_padding(keywrap.aes_key_unwrap_with_padding(kek, blob)),
                                                 None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    # an EC key made by cryptography unwraps (pitfall 5: no public-key attributes in the template) and signs
    mine = ec.generate_private_key(ec.SECP256R1())
    der = mine.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    name = label("ec-unwrapped")
    info = partition.unwrap(keys[KeyType.AES], WrapMechanism(WrapMode.AES_KWP),
                            keywrap.aes_key_wrap_with_padding(kek, der), label=name,
                            spec=KeySpec(KeyType.EC), attributes=KeyAttributes(sign=True))
    assert info.key_type is KeyType.EC and info.curve_oid == P256
    signature = partition.sign(name, SignMechanism(SignScheme.ECDSA, HashAlg.SHA256), b"msg")
    mine.public_key().verify(signature, b"msg", ec.ECDSA(hashes.SHA256()))
    # RSA wraps secret keys only; Ed25519 keys are not wrappable on SoftHSM2
    with pytest.raises(UnsupportedByBackend):
        partition.wrap(keys[KeyType.RSA], WrapMechanism(WrapMode.RSA_PKCS1V15), ec_label)
    ed = label("ed")
    partition.generate(ed, KeySpec(KeyType.ED, curve_oid="1.3.101.112"), OPEN)
    with pytest.raises(UnsupportedByBackend):
        partition.wrap(keys[KeyType.AES], WrapMechanism(WrapMode.AES_KWP), ed)


def test_rsa_wrap_of_secret_keys(partition: Pkcs11Partition, keys: dict[KeyType, str]) -> None:
    private = serialization.load_der_private_key(partition.export_key(keys[KeyType.RSA]).private_key or b"", None)
    assert isinstance(private, rsa.RSAPrivateKey)
    target = label("t")
    partition.generate(target, KeySpec(KeyType.AES, 128), OPEN)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    blob = partition.wrap(keys[KeyType.RSA], WrapMechanism(WrapMode.RSA_OAEP, HashAlg.SHA1), target)
    assert private.decrypt(blob, oaep) == partition.export_key(target).secret_key


def test_non_extractable_is_never_wrapped(partition: Pkcs11Partition, keys: dict[KeyType, str]) -> None:
    locked = label("locked")
    partition.generate(locked, KeySpec(KeyType.AES, 256), KeyAttributes(decrypt=True))
    for mechanism in (WrapMechanism(WrapMode.AES_KW), WrapMechanism(WrapMode.AES_KWP)):
        with pytest.raises(OperationNotPermitted):
            partition.wrap(keys[KeyType.AES], mechanism, locked)
    with pytest.raises(OperationNotPermitted):
        partition.export_key(locked)


def test_hmac_matches_hmac_module(partition: Pkcs11Partition, keys: dict[KeyType, str]) -> None:
    name = keys[KeyType.HMAC_SHA256]
    secret = partition.export_key(name).secret_key or b""
    mac = partition.hmac(name, b"data")
    assert mac == std_hmac.new(secret, b"data", "sha256").digest()
    assert partition.hmac_verify(name, b"data", mac)
    assert not partition.hmac_verify(name, b"data", mac[:-1] + bytes([mac[-1] ^ 1]))
    signer_only = label("mac-sign")
    partition.generate(signer_only, KeySpec(KeyType.HMAC_SHA384, 384), KeyAttributes(sign=True))
    assert len(partition.hmac(signer_only, b"x")) == 48
    with pytest.raises(OperationNotPermitted):
        partition.hmac_verify(signer_only, b"x", bytes(48))


def test_import_export_round_trips(partition: Pkcs11Partition) -> None:
    rsa_key = rsa.generate_private_key(65537, 2048)
    der = rsa_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    name = label("imp-rsa")
    info = partition.import_key(name, key_type=KeyType.RSA, attributes=OPEN, private_key=der)
    assert not info.attributes.always_sensitive and not info.attributes.never_extractable
    assert info.size == 2048 and info.public_key == rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert partition.export_key(name).private_key == der
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_der = ed.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    ed_name = label("imp-ed")
    partition.import_key(ed_name, key_type=KeyType.ED, attributes=OPEN, private_key=ed_der)
    assert partition.export_key(ed_name).private_key == ed_der
    ed.public_key().verify(partition.sign(ed_name, SignMechanism(SignScheme.EDDSA), b"m"), b"m")
    ec_key = ec.generate_private_key(ec.SECP384R1())
    ec_der = ec_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    ec_name = label("imp-ec")
    partition.import_key(ec_name, key_type=KeyType.EC, attributes=OPEN, private_key=ec_der)
    exported = serialization.load_der_private_key(partition.export_key(ec_name).private_key or b"", None)
    assert exported.private_numbers() == ec_key.private_numbers()  # type: ignore[union-attr]
    secret = secrets.token_bytes(24)
    aes_name = label("imp-aes")
    assert partition.import_key(aes_name, key_type=KeyType.AES, attributes=OPEN, secret_key=secret).size == 192
    assert partition.export_key(aes_name).secret_key == secret
    hmac_name = label("imp-hmac")
    partition.import_key(hmac_name, key_type=KeyType.HMAC_SHA256, attributes=OPEN, secret_key=b"k" * 40)
    assert partition.hmac(hmac_name, b"d") == std_hmac.new(b"k" * 40, b"d", "sha256").digest()
    sensitive = label("imp-sensitive")
    partition.import_key(sensitive, key_type=KeyType.AES, attributes=KeyAttributes(decrypt=True), secret_key=secret)
    with pytest.raises(OperationNotPermitted):
        partition.export_key(sensitive)
    with pytest.raises(InvalidInput):
        partition.import_key(label("bad"), key_type=KeyType.AES, attributes=OPEN, secret_key=b"short")
    with pytest.raises(KeyExists):
        partition.import_key(aes_name, key_type=KeyType.AES, attributes=OPEN, secret_key=secret)


def test_public_only_import_verifies_and_encrypts(partition: Pkcs11Partition) -> None:
    signer = rsa.generate_private_key(65537, 2048)
    spki = signer.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    name = label("pub")
    info = partition.import_key(name, key_type=KeyType.RSA, attributes=KeyAttributes(encrypt=True, verify=True,
                                                                                     wrap=True, sensitive=False),
                                public_key=spki)
    assert info.public_key == spki and info.key_type is KeyType.RSA
    assert name in partition.list_labels() and partition.get(name).public_key == spki
    mechanism = SignMechanism(SignScheme.RSA_PSS, HashAlg.SHA256)
    signature = signer.sign(b"m", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert partition.verify(name, mechanism, b"m", signature)
    ct = partition.encrypt(name, CipherMechanism(CipherMode.RSA_OAEP, HashAlg.SHA1), b"hi").ciphertext
    assert signer.decrypt(ct, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)) == b"hi"
    assert partition.export_key(name).public_key == spki
    with pytest.raises(OperationNotPermitted):
        partition.decrypt(name, CipherMechanism(CipherMode.RSA_OAEP, HashAlg.SHA1), ct)
    # a public key alone is replaced by another one; a key pair is not
    other = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert partition.import_key(name, key_type=KeyType.RSA, attributes=KeyAttributes(verify=True),
                                public_key=other).public_key == other
    assert partition.get(name).public_key == other
    pair = label("pair")
    partition.generate(pair, KeySpec(KeyType.EC, curve_oid=P256), KeyAttributes(sign=True))
    with pytest.raises(KeyExists):
        partition.import_key(pair, key_type=KeyType.RSA, attributes=KeyAttributes(verify=True), public_key=other)
    partition.delete(name)
    assert name not in partition.list_labels()
