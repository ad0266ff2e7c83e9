"""Every implemented ``signatureAlgorithm`` on suitable keys, signed through POST /v1/synchronousSign
and verified independently with ``cryptography`` (pycryptodome for Keccak, coincurve for ETH recovery)
against the ``publicKey`` the key endpoint returned. hsmgate is never asked to check its own work here,
except in the /v1/verify tests at the end.

How to verify each algorithm is derived from its *name* (the TSB's documented semantics, reference
§5.2), not from hsmgate's registry, so a registry row with the wrong hash or padding fails.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any

import coincurve
import httpx
import pytest
from Crypto.Hash import keccak
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from hsmgate.domain.algorithms import CURVES, SIGNATURE_ALGORITHMS
from hsmgate.hsm.base import KeyType
from hsmgate.hsm.softcrypto import EC_CURVES
from tests.helpers import assert_tsb_error, unique

# ---------------------------------------------------------------------------------------------
# keys

SIGN_ONLY = {
    "sign": True,
    "decrypt": False,
    "unwrap": False,
    "extractable": False,
    "sensitive": True,
    "modifiable": True,
    "destroyable": True,
}


@dataclass(frozen=True)
class KeyCase:
    name: str  # test id
    family: str  # RSA, DSA, EC, ED
    body: dict[str, Any]


KEY_CASES: list[KeyCase] = [
    KeyCase("RSA-2048", "RSA", {"algorithm": "RSA", "keySize": 2048}),
    KeyCase("DSA-2048", "DSA", {"algorithm": "DSA", "keySize": 2048}),
    *(KeyCase(CURVES[oid].name, "EC", {"algorithm": "EC", "curveOid": oid}) for oid in EC_CURVES),
    KeyCase("Ed25519", "ED", {"algorithm": "ED", "curveOid": "1.3.101.112"}),
    KeyCase("Ed448", "ED", {"algorithm": "ED", "curveOid": "1.3.101.113"}),
]
KEYS_BY_FAMILY: dict[str, list[KeyCase]] = {}
for _case in KEY_CASES:
    KEYS_BY_FAMILY.setdefault(_case.family, []).append(_case)


@dataclass(frozen=True)
class LiveKey:
    label: str
    public: Any  # a cryptography public key, loaded from the returned publicKey
    spki: bytes


def create_key(http: httpx.Client, body: dict[str, Any], attributes: dict[str, Any] | None = None) -> LiveKey:
    label = unique("matrix")
    response = http.post("/v1/key", json={"label": label, **body, "attributes": attributes or SIGN_ONLY})
    assert response.status_code == 201, response.text
    spki = base64.b64decode(response.json()["json"]["publicKey"])
    return LiveKey(label, serialization.load_der_public_key(spki), spki)


@pytest.fixture(scope="module")
def keys(http: httpx.Client) -> dict[str, LiveKey]:
    """One key per KeyCase, created once for the module."""
    return {case.name: create_key(http, case.body) for case in KEY_CASES}


def sign(
    http: httpx.Client, label: str, algorithm: str, payload: bytes, signature_type: str | None = None
) -> bytes:
    request: dict[str, Any] = {
        "payload": base64.b64encode(payload).decode(),
        "signKeyName": label,
        "signatureAlgorithm": algorithm,
    }
    if signature_type is not None:
        request["signatureType"] = signature_type
    response = http.post("/v1/synchronousSign", json={"signRequest": request})
    assert response.status_code == 200, f"{algorithm}: {response.text}"
    assert set(response.json()) == {"signature"}
    return base64.b64decode(response.json()["signature"], validate=True)


def sign_error(
    http: httpx.Client, label: str, algorithm: str, payload: bytes, **extra: Any
) -> tuple[int, dict[str, Any]]:
    request = {
        "payload": base64.b64encode(payload).decode(),
        "signKeyName": label,
        "signatureAlgorithm": algorithm,
        **extra,
    }
    response = http.post("/v1/synchronousSign", json={"signRequest": request})
    assert response.status_code != 200, response.text
    body = response.json()
    assert set(body) == {"errorCode", "reason", "message"}, body
    return response.status_code, body


def verify_call(
    http: httpx.Client, label: str, algorithm: str, payload: bytes, signature: bytes
) -> httpx.Response:
    return http.post(
        "/v1/verify",
        json={
            "verifySignatureRequest": {
                "signKeyName": label,
                "signatureAlgorithm": algorithm,
                "payload": base64.b64encode(payload).decode(),
                "signature": base64.b64encode(signature).decode(),
            }
        },
    )


# ---------------------------------------------------------------------------------------------
# independent semantics of each algorithm name

HASH_BY_NAME: dict[str, hashes.HashAlgorithm] = {
    "SHA1": hashes.SHA1(),
    "SHA224": hashes.SHA224(),
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
    "SHA3224": hashes.SHA3_224(),
    "SHA3256": hashes.SHA3_256(),
    "SHA3384": hashes.SHA3_384(),
    "SHA3512": hashes.SHA3_512(),
}
SHA2_FOR_SIZE = {28: hashes.SHA224(), 32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}


@dataclass(frozen=True)
class Semantics:
    family: str  # key family the name implies
    scheme: str  # pkcs1, pss, raw-rsa, dsa, ecdsa, eddsa
    hash: hashes.HashAlgorithm | None  # hash over the message (None: the payload is used as given)
    payload_is_digest: bool = False  # NONE…: the caller sends the digest
    keccak_bits: int | None = None
    double_sha256: bool = False
    deterministic: bool = False


def semantics(name: str) -> Semantics | None:
    """What the TSB documents for ``name`` (reference §5.2)."""
    if name == "EDDSA":
        return Semantics("ED", "eddsa", None)
    if name == "NONE_WITH_RSA":
        return Semantics("RSA", "raw-rsa", None, payload_is_digest=True)
    if name == "NONE_WITH_RSA_PSS":
        return Semantics("RSA", "pss", None, payload_is_digest=True)
    if name == "NONE_WITH_DSA":
        return Semantics("DSA", "dsa", None, payload_is_digest=True)
    if name == "NONE_WITH_ECDSA":
        return Semantics("EC", "ecdsa", None, payload_is_digest=True)
    if name == "DOUBLE_SHA256_WITH_ECDSA":
        return Semantics("EC", "ecdsa", hashes.SHA256(), double_sha256=True)
    if name == "SHA256_WITH_ECDSA_DETERMINISTIC":
        return Semantics("EC", "ecdsa", hashes.SHA256(), deterministic=True)
    if m := re.fullmatch(r"KECCAK(224|256|384|512)_WITH_ECDSA", name):
        return Semantics("EC", "ecdsa", None, keccak_bits=int(m.group(1)))
    if m := re.fullmatch(r"(NONE)?(SHA1|SHA224|SHA256|SHA384|SHA512)_WITH_RSA(_PSS)?", name):
        return Semantics(
            "RSA",
            "pss" if m.group(3) else "pkcs1",
            HASH_BY_NAME[m.group(2)],
            payload_is_digest=bool(m.group(1)),
        )
    if m := re.fullmatch(r"(SHA1|SHA224|SHA256|SHA384|SHA512)_WITH_DSA", name):
        return Semantics("DSA", "dsa", HASH_BY_NAME[m.group(1)])
    if m := re.fullmatch(
        r"(SHA1|SHA224|SHA256|SHA384|SHA512|SHA3224|SHA3256|SHA3384|SHA3512)_WITH_ECDSA", name
    ):
        return Semantics("EC", "ecdsa", HASH_BY_NAME[m.group(1)])
    return None


def message_for(name: str) -> bytes:
    return f"hsmgate sign matrix / {name} / \x00\xff".encode("latin-1")


def payload_for(name: str, sem: Semantics) -> bytes:
    """The request payload: the message, or for NONE… forms its digest."""
    message = message_for(name)
    if not sem.payload_is_digest:
        return message
    digest_hash = sem.hash or hashes.SHA256()  # NONE_WITH_*: a SHA-256 digest, as the GO client sends
    h = hashes.Hash(type(digest_hash)())
    h.update(message)
    return h.finalize()


def keccak_digest(bits: int, data: bytes) -> bytes:
    return keccak.new(digest_bits=bits, data=data).digest()


def scalar_width(public: Any) -> int:
    """Bytes of r and s in a fixed-width raw signature."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        return (public.curve.key_size + 7) // 8  # order and field have the same size on these curves
    assert isinstance(public, dsa.DSAPublicKey)
    return (public.parameters().parameter_numbers().q.bit_length() + 7) // 8


def independently_verify(sem: Semantics, public: Any, payload: bytes, signature: bytes) -> None:
    """Raise InvalidSignature (or AssertionError) unless ``signature`` is valid for ``payload``."""
    if sem.scheme == "eddsa":
        assert isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
        public.verify(signature, payload)
        return
    if sem.scheme == "raw-rsa":
        assert isinstance(public, rsa.RSAPublicKey)
        assert len(signature) == public.key_size // 8
        # type-1 padding over the payload itself, no DigestInfo
        assert public.recover_data_from_signature(signature, padding.PKCS1v15(), None) == payload
        return
    if sem.payload_is_digest:
        algorithm: Any = Prehashed(sem.hash or SHA2_FOR_SIZE[len(payload)])
        data = payload
    elif sem.keccak_bits:
        data = keccak_digest(sem.keccak_bits, payload)
        algorithm = Prehashed(SHA2_FOR_SIZE[len(data)])
    elif sem.double_sha256:
        data = hashlib.sha256(payload).digest()
        algorithm = hashes.SHA256()  # ECDSA over SHA-256(SHA-256(m))
    else:
        data = payload
        algorithm = sem.hash
    if sem.scheme == "pkcs1":
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif sem.scheme == "pss":
        assert isinstance(public, rsa.RSAPublicKey)
        mgf_hash = sem.hash or SHA2_FOR_SIZE[len(payload)]
        pss = padding.PSS(mgf=padding.MGF1(type(mgf_hash)()), salt_length=mgf_hash.digest_size)
        public.verify(signature, data, pss, algorithm)
    elif sem.scheme == "dsa":
        assert isinstance(public, dsa.DSAPublicKey)
        public.verify(signature, data, algorithm)
    elif sem.scheme == "ecdsa":
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(algorithm))
    else:  # pragma: no cover - semantics() only returns the schemes above
        raise AssertionError(sem.scheme)


def is_strict_der(signature: bytes) -> bool:
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return False
    return encode_dss_signature(r, s) == signature


# ---------------------------------------------------------------------------------------------
# the matrix


def test_every_implemented_algorithm_has_documented_semantics() -> None:
    # post-quantum rows are verified independently in tests/hsm/test_softpq.py and tests/api/test_pqc_api.py, BIP-340 in tests/domain/derivation/test_bip340.py,
    # BLS and LMS in tests/hsm/stateful_and_bls/
    classical = {name: row for name, row in SIGNATURE_ALGORITHMS.items()
                 if not row.key_type.is_post_quantum and name not in ("NONE_WITH_EC_SCHNORR_BIP0340", "BLS", "LMS")}
    missing = [name for name in classical if semantics(name) is None]
    assert not missing, f"no independent verification known for {missing}"
    family_of = {KeyType.RSA: "RSA", KeyType.DSA: "DSA", KeyType.EC: "EC", KeyType.ED: "ED"}
    wrong = {
        name: row.key_type
        for name, row in classical.items()
        if family_of.get(row.key_type) != semantics(name).family
    }  # type: ignore[union-attr]
    assert not wrong, f"registry key type disagrees with the algorithm name: {wrong}"


def assert_verify_endpoint(
    http: httpx.Client, label: str, algorithm: str, payload: bytes, signature: bytes
) -> None:
    response = verify_call(http, label, algorithm, payload, signature)
    assert response.status_code == 200, response.text
    assert response.json() == {"signatureValid": True}


MATRIX = [
    pytest.param(name, key_case.name, id=f"{name}-{key_case.name}")
    for name in SIGNATURE_ALGORITHMS
    if (sem := semantics(name)) is not None
    for key_case in KEYS_BY_FAMILY[sem.family]
]


@pytest.mark.parametrize(("algorithm", "key_name"), MATRIX)
def test_sign_verifies_independently(
    http: httpx.Client, keys: dict[str, LiveKey], algorithm: str, key_name: str
) -> None:
    sem = semantics(algorithm)
    assert sem is not None
    key = keys[key_name]
    payload = payload_for(algorithm, sem)

    signature = sign(http, key.label, algorithm, payload)
    if sem.scheme in ("dsa", "ecdsa"):
        assert is_strict_der(signature), "DSA/ECDSA signatures are DER SEQUENCE{r, s} by default"
    independently_verify(sem, key.public, payload, signature)
    assert_verify_endpoint(http, key.label, algorithm, payload, signature)

    # the signature really covers the payload
    tampered = bytes([payload[0] ^ 0x01]) + payload[1:]
    with pytest.raises((InvalidSignature, AssertionError, ValueError)):
        independently_verify(sem, key.public, tampered, signature)

    if sem.scheme in ("dsa", "ecdsa"):
        width = scalar_width(key.public)
        explicit_der = sign(http, key.label, algorithm, payload, "DER")
        assert is_strict_der(explicit_der)
        independently_verify(sem, key.public, payload, explicit_der)

        raw = sign(http, key.label, algorithm, payload, "RAW")
        assert len(raw) == 2 * width, f"RAW must be r‖s of {width} bytes each"
        r, s = int.from_bytes(raw[:width], "big"), int.from_bytes(raw[width:], "big")
        independently_verify(sem, key.public, payload, encode_dss_signature(r, s))
        assert_verify_endpoint(http, key.label, algorithm, payload, raw)

    if sem.deterministic:
        again = sign(http, key.label, algorithm, payload)
        assert again == signature, "RFC 6979 signatures of the same payload must be identical"
        raw = sign(http, key.label, algorithm, payload, "RAW")
        width = scalar_width(key.public)
        assert (
            int.from_bytes(raw[:width], "big"),
            int.from_bytes(raw[width:], "big"),
        ) == decode_dss_signature(signature)
        other = sign(http, key.label, algorithm, payload + b"!")
        assert other != signature


def test_randomized_ecdsa_differs_between_calls(http: httpx.Client, keys: dict[str, LiveKey]) -> None:
    """The non-deterministic form is not accidentally deterministic (a fixed nonce would leak the key)."""
    key = keys["secp256r1"]
    first = sign(http, key.label, "SHA256_WITH_ECDSA", b"same payload")
    second = sign(http, key.label, "SHA256_WITH_ECDSA", b"same payload")
    assert first != second


def test_raw_width_is_fixed_on_secp521r1(http: httpx.Client, keys: dict[str, LiveKey]) -> None:
    """On P-521 r and s are below 2^521, so their minimal big-endian form is often shorter than
    66 bytes: RAW must left-pad every time."""
    key = keys["secp521r1"]
    sem = semantics("SHA512_WITH_ECDSA")
    assert sem is not None
    for i in range(8):
        payload = f"p521 {i}".encode()
        raw = sign(http, key.label, "SHA512_WITH_ECDSA", payload, "RAW")
        assert len(raw) == 132
        independently_verify(
            sem,
            key.public,
            payload,
            encode_dss_signature(int.from_bytes(raw[:66], "big"), int.from_bytes(raw[66:], "big")),
        )


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_eth_signature_type(http: httpx.Client, keys: dict[str, LiveKey]) -> None:
    key = keys["secp256k1"]
    point = key.public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    sem = semantics("KECCAK256_WITH_ECDSA")
    assert sem is not None
    for i in range(12):
        payload = f"ethereum transaction {i}".encode()
        signature = sign(http, key.label, "KECCAK256_WITH_ECDSA", payload, "ETH")
        assert len(signature) == 65
        r, s, v = (
            int.from_bytes(signature[:32], "big"),
            int.from_bytes(signature[32:64], "big"),
            signature[64],
        )
        assert v in (27, 28)
        assert 0 < s <= SECP256K1_N // 2, "ETH signatures must have low s (EIP-2)"
        independently_verify(sem, key.public, payload, encode_dss_signature(r, s))
        recovered = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), keccak_digest(256, payload), hasher=None
        )
        assert recovered.format(compressed=False) == point
        # /v1/verify accepts the 65-byte form
        response = verify_call(http, key.label, "KECCAK256_WITH_ECDSA", payload, signature)
        assert response.status_code == 200, response.text
        assert response.json() == {"signatureValid": True}
        # … also with v as the bare recovery id, but not with the other v
        response = verify_call(
            http, key.label, "KECCAK256_WITH_ECDSA", payload, signature[:64] + bytes([v - 27])
        )
        assert response.json() == {"signatureValid": True}
        response = verify_call(
            http, key.label, "KECCAK256_WITH_ECDSA", payload, signature[:64] + bytes([55 - v])
        )
        assert response.json() == {"signatureValid": False}, "a wrong v names a different signer"


def ecdsa_hash_value(sem: Semantics, payload: bytes) -> bytes:
    """The hash value an ECDSA algorithm signs for ``payload``."""
    if sem.payload_is_digest:
        return payload
    if sem.keccak_bits:
        return keccak_digest(sem.keccak_bits, payload)
    if sem.double_sha256:
        return hashlib.sha256(hashlib.sha256(payload).digest()).digest()
    assert sem.hash is not None
    h = hashes.Hash(type(sem.hash)())
    h.update(payload)
    return h.finalize()


ECDSA_ALGORITHMS = [name for name in SIGNATURE_ALGORITHMS if (sem := semantics(name)) and sem.family == "EC"]


@pytest.mark.parametrize(
    "algorithm",
    [
        *ECDSA_ALGORITHMS,
        pytest.param("NONE_WITH_ECDSA-20", id="NONE_WITH_ECDSA-sha1-digest"),
        pytest.param("NONE_WITH_ECDSA-64", id="NONE_WITH_ECDSA-sha512-digest"),
    ],
)
def test_eth_signature_type_with_every_ecdsa_hash(
    http: httpx.Client, keys: dict[str, LiveKey], algorithm: str
) -> None:
    """r‖s‖v is defined for any hash: e is the leftmost 256 bits of the hash value, as an integer
    (shorter digests are left-padded). SHA-1 and 20-byte digests used to fail with a 500."""
    key = keys["secp256k1"]
    name, _, size = algorithm.partition("-")
    sem = semantics(name)
    assert sem is not None
    payload = payload_for(name, sem)
    if size:
        payload = hashlib.sha512(b"m").digest()[: int(size)]
    signature = sign(http, key.label, name, payload, "ETH")
    assert len(signature) == 65 and signature[64] in (27, 28)
    e = ecdsa_hash_value(sem, payload)[:32].rjust(32, b"\x00")
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature[:64] + bytes([signature[64] - 27]), e, hasher=None
    )
    point = key.public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert recovered.format(compressed=False) == point
    response = verify_call(http, key.label, name, payload, signature)
    assert response.json() == {"signatureValid": True}, response.text


def test_eth_signature_type_needs_secp256k1(http: httpx.Client, keys: dict[str, LiveKey]) -> None:
    status, body = sign_error(
        http, keys["secp256r1"].label, "KECCAK256_WITH_ECDSA", b"x", signatureType="ETH"
    )
    assert status == 400
    assert body["errorCode"] == 600
    assert "secp256k1" in body["message"]


# ---------------------------------------------------------------------------------------------
# /v1/verify

VERIFY_CASES = [
    pytest.param("RSA-2048", "SHA256_WITH_RSA", None, id="rsa-pkcs1"),
    pytest.param("RSA-2048", "SHA384_WITH_RSA_PSS", None, id="rsa-pss"),
    pytest.param("RSA-2048", "NONESHA256_WITH_RSA", None, id="rsa-nonesha256"),
    pytest.param("RSA-2048", "NONE_WITH_RSA", None, id="rsa-none"),
    pytest.param("DSA-2048", "SHA256_WITH_DSA", "DER", id="dsa-der"),
    pytest.param("DSA-2048", "SHA256_WITH_DSA", "RAW", id="dsa-raw"),
    pytest.param("secp256r1", "SHA256_WITH_ECDSA", "DER", id="p256-der"),
    pytest.param("secp256r1", "SHA256_WITH_ECDSA", "RAW", id="p256-raw"),
    pytest.param("secp521r1", "SHA512_WITH_ECDSA", "DER", id="p521-der"),
    pytest.param("secp521r1", "SHA512_WITH_ECDSA", "RAW", id="p521-raw"),
    pytest.param("brainpool384r1", "SHA3384_WITH_ECDSA", "RAW", id="bp384-sha3-raw"),
    pytest.param("secp256k1", "KECCAK256_WITH_ECDSA", "RAW", id="k1-keccak-raw"),
    pytest.param("secp256k1", "DOUBLE_SHA256_WITH_ECDSA", "DER", id="k1-double-sha256"),
    pytest.param("secp256r1", "NONE_WITH_ECDSA", "RAW", id="p256-none-raw"),
    pytest.param("Ed25519", "EDDSA", None, id="ed25519"),
    pytest.param("Ed448", "EDDSA", None, id="ed448"),
]


@pytest.mark.parametrize(("key_name", "algorithm", "signature_type"), VERIFY_CASES)
def test_verify_endpoint(
    http: httpx.Client, keys: dict[str, LiveKey], key_name: str, algorithm: str, signature_type: str | None
) -> None:
    sem = semantics(algorithm)
    assert sem is not None
    key = keys[key_name]
    payload = payload_for(algorithm, sem)
    signature = sign(http, key.label, algorithm, payload, signature_type)

    def check(p: bytes, sig: bytes, expected: bool) -> None:
        response = verify_call(http, key.label, algorithm, p, sig)
        assert response.status_code == 200, f"{sig.hex()[:40]}: {response.text}"
        assert response.json() == {"signatureValid": expected}, sig.hex()

    check(payload, signature, True)
    tampered = bytes([payload[0] ^ 0x80]) + payload[1:]
    check(tampered, signature, False)
    flipped = signature[:-1] + bytes([signature[-1] ^ 0x01])
    check(payload, flipped, False)
    garbage = [
        b"\x00",
        b"\x30\x03\x02\x01",
        os.urandom(8),
        os.urandom(len(signature)),
        b"\xff" * len(signature),
        b"\x00" * len(signature),
        signature + b"\x05",
        signature[:-1],
    ]
    for junk in garbage:
        check(payload, junk, False)


def test_verify_endpoint_unknown_key(http: httpx.Client) -> None:
    response = verify_call(http, unique("nope"), "SHA256_WITH_RSA", b"x", b"y")
    assert_tsb_error(response, 650, 404)


# ---------------------------------------------------------------------------------------------
# refusals

MISMATCHES = [
    pytest.param("RSA-2048", "SHA256_WITH_ECDSA", id="ecdsa-on-rsa"),
    pytest.param("RSA-2048", "SHA256_WITH_DSA", id="dsa-on-rsa"),
    pytest.param("RSA-2048", "EDDSA", id="eddsa-on-rsa"),
    pytest.param("secp256r1", "SHA256_WITH_RSA", id="rsa-on-ec"),
    pytest.param("secp256r1", "EDDSA", id="eddsa-on-ec"),
    pytest.param("DSA-2048", "SHA256_WITH_ECDSA", id="ecdsa-on-dsa"),
    pytest.param("Ed25519", "SHA256_WITH_ECDSA", id="ecdsa-on-ed25519"),
    pytest.param("Ed448", "SHA512_WITH_RSA_PSS", id="pss-on-ed448"),
]


@pytest.mark.parametrize(("key_name", "algorithm"), MISMATCHES)
def test_algorithm_not_matching_key_is_607(
    http: httpx.Client, keys: dict[str, LiveKey], key_name: str, algorithm: str
) -> None:
    status, body = sign_error(http, keys[key_name].label, algorithm, hashlib.sha256(b"m").digest())
    assert (status, body["errorCode"], body["reason"]) == (
        400,
        607,
        "res.error.algorithm.not.supported.by.key",
    )
    response = verify_call(http, keys[key_name].label, algorithm, hashlib.sha256(b"m").digest(), b"\x01" * 64)
    assert_tsb_error(response, 607, 400)


def test_key_without_sign_attribute_is_refused(http: httpx.Client) -> None:
    attributes = {**SIGN_ONLY, "sign": False, "decrypt": True}
    key = create_key(http, {"algorithm": "RSA", "keySize": 2048}, attributes)
    status, body = sign_error(http, key.label, "SHA256_WITH_RSA", b"payload")
    assert status == 400  # documented deviation: the TSB answers 500
    assert body["errorCode"] == 701
    assert body["reason"] == "res.error.in.hsm"
    assert body["message"].startswith("KEY_FUNCTION_NOT_PERMITTED")


def test_digest_of_wrong_length_is_612(http: httpx.Client, keys: dict[str, LiveKey]) -> None:
    status, body = sign_error(http, keys["RSA-2048"].label, "NONESHA256_WITH_RSA", b"\x01" * 31)
    assert (status, body["errorCode"]) == (400, 612)
    assert body["reason"] == "res.error.invalid.payload"


@pytest.mark.parametrize(
    ("key_name", "algorithm", "length"),
    [
        pytest.param("RSA-2048", "NONESHA512_WITH_RSA_PSS", 32, id="nonesha512-pss-32"),
        pytest.param("secp256r1", "NONE_WITH_ECDSA", 31, id="none-ecdsa-31"),
        pytest.param("DSA-2048", "NONE_WITH_DSA", 17, id="none-dsa-17"),
        pytest.param("RSA-2048", "NONE_WITH_RSA", 246, id="none-rsa-too-long"),
    ],
)
def test_other_unusable_payloads_are_612(
    http: httpx.Client, keys: dict[str, LiveKey], key_name: str, algorithm: str, length: int
) -> None:
    status, body = sign_error(http, keys[key_name].label, algorithm, b"\x02" * length)
    assert (status, body["errorCode"]) == (400, 612), body


def test_pss_hash_too_large_for_the_key_is_607(http: httpx.Client) -> None:
    """EMSA-PSS with salt = digest length needs emLen >= 2·hLen + 2: SHA-512 does not fit RSA-1024.
    Used to be a 500 (cryptography's ValueError escaped)."""
    key = create_key(http, {"algorithm": "RSA", "keySize": 1024})
    digest = hashlib.sha512(b"m").digest()
    for algorithm, payload in (
        ("SHA512_WITH_RSA_PSS", b"m"),
        ("NONESHA512_WITH_RSA_PSS", digest),
        ("NONE_WITH_RSA_PSS", digest),
    ):
        status, body = sign_error(http, key.label, algorithm, payload)
        assert (status, body["errorCode"]) == (400, 607), body
        response = verify_call(http, key.label, algorithm, payload, b"\x01" * 128)
        assert_tsb_error(response, 607, 400)
    # SHA-384 still fits (98 <= 128 bytes) and verifies
    sem = semantics("SHA384_WITH_RSA_PSS")
    assert sem is not None
    independently_verify(sem, key.public, b"m", sign(http, key.label, "SHA384_WITH_RSA_PSS", b"m"))
    assert http.get("/health").status_code == 200


def test_unimplemented_tsb_algorithm_is_611(http: httpx.Client, keys: dict[str, LiveKey]) -> None:
    status, body = sign_error(http, keys["RSA-2048"].label, "XMSS-SHA256_10_256", b"payload")
    assert (status, body["errorCode"], body["reason"]) == (400, 611, "res.error.unsupported.operation")


def test_unknown_algorithm_value_is_600(http: httpx.Client, keys: dict[str, LiveKey]) -> None:
    status, body = sign_error(http, keys["RSA-2048"].label, "FOO", b"payload")
    assert (status, body["errorCode"], body["reason"]) == (400, 600, "res.error.input.validation.failed")
    assert body["message"] == "Value 'FOO' is not valid for field 'signRequest.signatureAlgorithm'"


def test_unknown_key_is_404(http: httpx.Client) -> None:
    status, body = sign_error(http, unique("missing"), "SHA256_WITH_RSA", b"payload")
    assert (status, body["errorCode"], body["reason"]) == (404, 650, "res.error.key.not.existent")
