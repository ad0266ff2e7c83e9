"""Pkcs11Partition against a throwaway SoftHSM2 token.

Signatures are checked with ``cryptography`` directly (not through the backend). Token loss is simulated
three ways, all of which SoftHSM2 allows: closing every session underneath (C_CloseAllSessions), finalising
the module underneath (C_Finalize), and moving the token's directory away and back.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pkcs11 import Attribute, ObjectClass

from hsmgate.hsm import pkcs11 as backend
from hsmgate.hsm.base import (
    BackendUnavailable,
    HashAlg,
    InvalidInput,
    KeyAttributes,
    KeyExists,
    KeyInfo,
    KeyNotFound,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    SignMechanism,
    SignScheme,
    UnsupportedByBackend,
)
from hsmgate.hsm.pkcs11 import Pkcs11Partition, describe_module
from tests.softhsm import SoftHsmToken, token_directory

pytest_plugins = ["tests.softhsm_fixtures"]  # a no-op once tests/conftest.py lists it too
pytestmark = pytest.mark.pkcs11

P256, ED25519, ED448 = "1.2.840.10045.3.1.7", "1.3.101.112", "1.3.101.113"
SIGNER = KeyAttributes(sign=True, verify=True, destroyable=True)
PUBLIC_TYPES = {KeyType.RSA: rsa.RSAPublicKey, KeyType.EC: ec.EllipticCurvePublicKey,
                KeyType.DSA: dsa.DSAPublicKey}


def open_partition(token: SoftHsmToken, **kwargs: object) -> Pkcs11Partition:
    return Pkcs11Partition("test", module_path=token.module_path, token_label=token.token_label,
                           pin=token.pin, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def token(softhsm_factory: Callable[[str], SoftHsmToken]) -> SoftHsmToken:
    """A token of this module's own: some keys made here cannot be deleted (destroyable=False)."""
    return softhsm_factory("unit-pkcs11")


@pytest.fixture(scope="module")
def partition(token: SoftHsmToken) -> Iterator[Pkcs11Partition]:
    part = open_partition(token)
    yield part
    part.close()


@pytest.fixture(scope="module")
def signers(partition: Pkcs11Partition) -> dict[str, KeyInfo]:
    """One signing key per asymmetric type."""
    specs = {"rsa": KeySpec(KeyType.RSA, 2048), "ec": KeySpec(KeyType.EC, curve_oid=P256),
             "ed25519": KeySpec(KeyType.ED, curve_oid=ED25519), "ed448": KeySpec(KeyType.ED, curve_oid=ED448),
             "dsa": KeySpec(KeyType.DSA, 1024)}
    return {name: partition.generate(f"signer-{name}", spec, SIGNER) for name, spec in specs.items()}


def check_signature(public_der: bytes, mechanism: SignMechanism, data: bytes, signature: bytes) -> None:
    """Raises InvalidSignature unless ``cryptography`` accepts the signature."""
    key = serialization.load_der_public_key(public_der)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        assert mechanism.scheme is SignScheme.EDDSA
        key.verify(signature, data)
        return
    if mechanism.scheme is SignScheme.RSA_PKCS1V15_RAW:
        assert isinstance(key, rsa.RSAPublicKey)
        assert key.recover_data_from_signature(signature, padding.PKCS1v15(), None) == data
        return
    assert mechanism.hash is not None
    digest: hashes.HashAlgorithm = getattr(hashes, mechanism.hash.name)()
    algorithm = Prehashed(digest) if mechanism.prehashed else digest
    if isinstance(key, rsa.RSAPublicKey):
        pad = (padding.PKCS1v15() if mechanism.scheme is SignScheme.RSA_PKCS1V15
               else padding.PSS(padding.MGF1(digest), salt_length=digest.digest_size))
        key.verify(signature, data, pad, algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        assert mechanism.scheme is SignScheme.ECDSA
        key.verify(signature, data, ec.ECDSA(algorithm))
    else:
        assert isinstance(key, dsa.DSAPublicKey) and mechanism.scheme is SignScheme.DSA
        key.verify(signature, data, algorithm)


def payload(mechanism: SignMechanism, message: bytes = b"hsmgate test message") -> bytes:
    if mechanism.prehashed and mechanism.hash:
        return hashlib.new(mechanism.hash.value, message).digest()
    return message


# ------------------------------------------------------------------------------------------ key lifecycle
HMAC_BITS = {KeyType.HMAC_SHA1: 160, KeyType.HMAC_SHA224: 224, KeyType.HMAC_SHA256: 256,
             KeyType.HMAC_SHA384: 384, KeyType.HMAC_SHA512: 512}
GENERATE_CASES = [
    KeySpec(KeyType.RSA, 2048),
    *(KeySpec(KeyType.EC, curve_oid=oid) for oid in (
        P256, "1.3.132.0.34", "1.3.132.0.35", "1.3.132.0.10", "1.3.132.0.33",
        "1.3.36.3.3.2.8.1.1.7", "1.3.36.3.3.2.8.1.1.11", "1.3.36.3.3.2.8.1.1.13")),
    KeySpec(KeyType.ED, curve_oid=ED25519), KeySpec(KeyType.ED, curve_oid=ED448),
    KeySpec(KeyType.AES, 128), KeySpec(KeyType.AES, 192), KeySpec(KeyType.AES, 256),
    *(KeySpec(t, bits) for t, bits in HMAC_BITS.items()),
    KeySpec(KeyType.DSA, 1024),
]
EXPECTED_SIZE = {"1.3.132.0.34": 384, "1.3.132.0.35": 521, "1.3.132.0.33": 224, "1.3.36.3.3.2.8.1.1.11": 384,
                 "1.3.36.3.3.2.8.1.1.13": 512, ED25519: 255, ED448: 448}


@pytest.mark.parametrize("spec", GENERATE_CASES, ids=lambda s: f"{s.key_type}-{s.size or s.curve_oid}")
def test_generate_get_list_delete(partition: Pkcs11Partition, spec: KeySpec) -> None:
    assert partition.capabilities().can_generate(spec)
    label = f"life-{spec.key_type}-{spec.size or spec.curve_oid}"
    info = partition.generate(label, spec, SIGNER)

    assert info.key_type is spec.key_type and info.curve_oid == spec.curve_oid
    assert len(info.key_id or b"") == 16
    assert info.size == (spec.size or EXPECTED_SIZE.get(spec.curve_oid or "", 256))
    assert info.attributes.sign and info.attributes.verify and info.created_at is None
    if spec.key_type.is_asymmetric:
        public = serialization.load_der_public_key(info.public_key or b"")
        edwards = ed25519.Ed25519PublicKey if spec.curve_oid == ED25519 else ed448.Ed448PublicKey
        wanted = PUBLIC_TYPES.get(spec.key_type) or edwards
        assert isinstance(public, wanted)
    else:
        assert info.public_key is None
    assert partition.get(label) == info
    assert label in partition.list_labels()

    partition.delete(label)
    assert label not in partition.list_labels()
    with pytest.raises(KeyNotFound, match=label):
        partition.get(label)


def test_ec_curves_sign(partition: Pkcs11Partition) -> None:
    mechanism = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)
    curves = sorted(str(oid) for oid in partition.capabilities().key_specs[KeyType.EC])
    assert P256 in curves, curves  # SoftHSM2 has P-256 at least: an empty declaration would check nothing
    for oid in curves:
        info = partition.generate(f"curve-{oid}", KeySpec(KeyType.EC, curve_oid=oid), SIGNER)
        signature = partition.sign(info.label, mechanism, b"data")
        check_signature(info.public_key or b"", mechanism, b"data", signature)
        partition.delete(info.label)


def test_attributes_read_back(partition: Pkcs11Partition, signers: dict[str, KeyInfo]) -> None:
    cipher = KeyAttributes(encrypt=True, decrypt=True, wrap=True, unwrap=True, destroyable=True)
    locked = partition.generate("attr-locked", KeySpec(KeyType.AES, 256), cipher)
    assert locked.attributes == cipher.with_history(always_sensitive=True, never_extractable=True)
    lease = partition._checkout()  # CKA_PRIVATE is not part of KeyAttributes: look at the objects
    try:
        for label, cls in (("attr-locked", ObjectClass.SECRET_KEY), ("signer-ec", ObjectClass.PRIVATE_KEY),
                           ("signer-ec", ObjectClass.PUBLIC_KEY)):
            (obj,) = lease.session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label})
            assert obj[Attribute.PRIVATE] is (cls is not ObjectClass.PUBLIC_KEY) and obj[Attribute.TOKEN]
    finally:
        partition._checkin(lease, healthy=True)
    loose = partition.generate("attr-loose", KeySpec(KeyType.EC, curve_oid=P256),
                               KeyAttributes(sign=True, derive=True, sensitive=False, extractable=True,
                                             modifiable=False, destroyable=True, copyable=True))
    assert loose.attributes == KeyAttributes(sign=True, derive=True, sensitive=False, extractable=True,
                                             modifiable=False, destroyable=True, copyable=True)
    assert partition.get("attr-loose").attributes == loose.attributes
    given = partition.generate("attr-id", KeySpec(KeyType.AES, 128), SIGNER, key_id=b"\x01\x02\x03")
    assert given.key_id == b"\x01\x02\x03"
    hmac = partition.generate("attr-hmac", KeySpec(KeyType.HMAC_SHA384), SIGNER)  # size defaults to 384
    assert (hmac.key_type, hmac.size) == (KeyType.HMAC_SHA384, 384)
    for label in ("attr-locked", "attr-loose", "attr-id", "attr-hmac"):
        partition.delete(label)


def test_duplicate_label_refused(partition: Pkcs11Partition) -> None:
    partition.generate("dup", KeySpec(KeyType.EC, curve_oid=P256), SIGNER)
    with pytest.raises(KeyExists, match="dup"):
        partition.generate("dup", KeySpec(KeyType.AES, 128), SIGNER)
    assert partition.list_labels().count("dup") == 1
    partition.delete("dup")


def test_not_destroyable_key_stays(partition: Pkcs11Partition) -> None:
    partition.generate("keep-me", KeySpec(KeyType.EC, curve_oid=P256),
                       KeyAttributes(sign=True, destroyable=False))
    with pytest.raises(OperationNotPermitted, match="keep-me"):
        partition.delete("keep-me")
    assert partition.get("keep-me").attributes.destroyable is False


def test_unsupported_generation(partition: Pkcs11Partition) -> None:
    for spec in (KeySpec(KeyType.CHACHA20, 256), KeySpec(KeyType.DSA, 2048), KeySpec(KeyType.AES, 100),
                 KeySpec(KeyType.RSA, 65536), KeySpec(KeyType.ED, curve_oid=P256), KeySpec(KeyType.EC),
                 KeySpec(KeyType.EC, curve_oid="1.2.3.4"), KeySpec(KeyType.ML_DSA_65)):
        with pytest.raises(UnsupportedByBackend):
            partition.generate("never", spec, SIGNER)
    assert "never" not in partition.list_labels()


# ------------------------------------------------------------------------------------------------- signing
def test_capability_counts(partition: Pkcs11Partition) -> None:
    sign = partition.capabilities().sign
    counts = {t: sum(1 for k, _ in sign if k is t) for t in (KeyType.RSA, KeyType.EC, KeyType.DSA,
                                                             KeyType.ED)}
    assert counts == {KeyType.RSA: 37, KeyType.EC: 18, KeyType.DSA: 18, KeyType.ED: 1}
    assert not any(m.deterministic for _, m in sign)


def test_every_capability_signs_and_verifies(partition: Pkcs11Partition,
                                             signers: dict[str, KeyInfo]) -> None:
    by_type = {KeyType.RSA: ["rsa"], KeyType.EC: ["ec"], KeyType.ED: ["ed25519", "ed448"],
               KeyType.DSA: ["dsa"]}
    checked = 0
    for key_type, mechanism in sorted(partition.capabilities().sign, key=str):
        for name in by_type[key_type]:
            key, data = signers[name], payload(mechanism)
            signature = partition.sign(key.label, mechanism, data)
            check_signature(key.public_key or b"", mechanism, data, signature)
            assert partition.verify(key.label, mechanism, data, signature)
            assert not partition.verify(key.label, mechanism, payload(mechanism, b"other"), signature)
            assert not partition.verify(key.label, mechanism, data, bytes(len(signature)))
            checked += 1
    assert checked == 75


def test_rsa_routes_agree(partition: Pkcs11Partition, signers: dict[str, KeyInfo],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Combined mechanism, hash here + DigestInfo + CKM_RSA_PKCS, raw CKM_RSA_PKCS_PSS, EMSA-PSS + X.509."""
    label, data = signers["rsa"].label, b"route check"
    combined = partition.sign(label, SignMechanism(SignScheme.RSA_PKCS1V15, HashAlg.SHA256), data)
    digest_only = SignMechanism(SignScheme.RSA_PKCS1V15, HashAlg.SHA256, prehashed=True)
    prehashed = partition.sign(label, digest_only, hashlib.sha256(data).digest())
    without_combined = partition._mechanisms - {backend.M.SHA256_RSA_PKCS, backend.M.SHA256_RSA_PKCS_PSS}
    monkeypatch.setattr(partition, "_mechanisms", without_combined)
    hashed_here = partition.sign(label, SignMechanism(SignScheme.RSA_PKCS1V15, HashAlg.SHA256), data)
    assert combined == prehashed == hashed_here
    pss = SignMechanism(SignScheme.RSA_PSS, HashAlg.SHA256)
    check_signature(signers["rsa"].public_key or b"", pss, data, partition.sign(label, pss, data))  # raw PSS
    monkeypatch.setattr(partition, "_mechanisms", without_combined - {backend.M.RSA_PKCS_PSS})
    check_signature(signers["rsa"].public_key or b"", pss, data, partition.sign(label, pss, data))  # X.509


def test_sign_refusals(partition: Pkcs11Partition, signers: dict[str, KeyInfo]) -> None:
    ec_label, sha256 = signers["ec"].label, HashAlg.SHA256
    deterministic = SignMechanism(SignScheme.ECDSA, sha256, deterministic=True)
    with pytest.raises(UnsupportedByBackend, match="RFC 6979"):
        partition.sign(ec_label, deterministic, b"x")
    with pytest.raises(UnsupportedByBackend, match="signer-ec"):
        partition.verify(ec_label, deterministic, b"x", b"sig")
    with pytest.raises(UnsupportedByBackend, match="signer-ec"):
        partition.sign(ec_label, SignMechanism(SignScheme.RSA_PSS, sha256), b"x")
    with pytest.raises(UnsupportedByBackend, match="signer-ec"):
        partition.sign(ec_label, SignMechanism(SignScheme.ML_DSA), b"x")
    with pytest.raises(InvalidInput, match="32 bytes"):
        partition.sign(ec_label, SignMechanism(SignScheme.ECDSA, sha256, prehashed=True), b"x")
    with pytest.raises(InvalidInput, match="context"):
        partition.sign(ec_label, SignMechanism(SignScheme.ECDSA, sha256), b"x", context=b"ctx")
    with pytest.raises(InvalidInput, match="CKR_DATA_LEN_RANGE"):
        partition.sign(signers["rsa"].label, SignMechanism(SignScheme.RSA_PKCS1V15_RAW), b"x" * 250)
    with pytest.raises(KeyNotFound, match="no-such-key"):
        partition.sign("no-such-key", SignMechanism(SignScheme.EDDSA), b"x")
    partition.generate("cannot-sign", KeySpec(KeyType.EC, curve_oid=P256), KeyAttributes(destroyable=True))
    with pytest.raises(OperationNotPermitted, match="cannot-sign"):
        partition.sign("cannot-sign", SignMechanism(SignScheme.ECDSA, HashAlg.SHA256), b"x")
    partition.delete("cannot-sign")


def test_remembered_key_handles_follow_replacement(partition: Pkcs11Partition) -> None:
    """A session remembers signing keys; a key deleted and re-made under the same label is found anew."""
    mechanism, spec = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256), KeySpec(KeyType.EC, curve_oid=P256)
    for _ in range(2):
        info = partition.generate("replaced", spec, SIGNER)
        for _ in range(3):
            signature = partition.sign("replaced", mechanism, b"m")
            check_signature(info.public_key or b"", mechanism, b"m", signature)
        partition.delete("replaced")
    with pytest.raises(KeyNotFound):
        partition.sign("replaced", mechanism, b"m")


def test_generate_random(partition: Pkcs11Partition) -> None:
    assert partition.generate_random(0) == b""
    assert len(partition.generate_random(1)) == 1
    assert partition.generate_random(32) != partition.generate_random(32)
    with pytest.raises(InvalidInput):
        partition.generate_random(-1)


# ------------------------------------------------------------------------------- other applications' keys
def pkcs11_tool(token: SoftHsmToken, *args: str) -> str:
    command = ["pkcs11-tool", "--module", token.module_path, "--token-label", token.token_label,
               "--login", "--pin", token.pin, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.subprocess
@pytest.mark.skipif(shutil.which("pkcs11-tool") is None, reason="OpenSC is not installed")
def test_keys_made_by_pkcs11_tool(partition: Pkcs11Partition, token: SoftHsmToken) -> None:
    for key_type, label, key_id in (("rsa:2048", "ext-rsa", "01"), ("EC:prime256v1", "ext-ec", "02")):
        pkcs11_tool(token, "--keypairgen", "--key-type", key_type, "--label", label, "--id", key_id)
    assert {"ext-rsa", "ext-ec"} <= set(partition.list_labels())
    for label, key_type, mechanism in (
            ("ext-rsa", KeyType.RSA, SignMechanism(SignScheme.RSA_PKCS1V15, HashAlg.SHA256)),
            ("ext-ec", KeyType.EC, SignMechanism(SignScheme.ECDSA, HashAlg.SHA384))):
        partition.sign(label, mechanism, b"remember me")  # the session now remembers the handle
        if label == "ext-ec":  # replaced by another application under the same label
            pkcs11_tool(token, "--delete-object", "--type", "privkey", "--label", label)
            pkcs11_tool(token, "--delete-object", "--type", "pubkey", "--label", label)
            pkcs11_tool(token, "--keypairgen", "--key-type", "EC:prime256v1", "--label", label,
                        "--id", "03")
        info = partition.get(label)
        size = 2048 if key_type is KeyType.RSA else 256
        assert (info.key_type, info.size, info.created_at) == (key_type, size, None)
        check_signature(info.public_key or b"", mechanism, b"ext", partition.sign(label, mechanism, b"ext"))


@pytest.mark.subprocess
@pytest.mark.skipif(shutil.which("pkcs11-tool") is None, reason="OpenSC is not installed")
def test_backend_keys_visible_to_pkcs11_tool(partition: Pkcs11Partition,
                                             token: SoftHsmToken) -> None:
    partition.generate("seen-by-opensc", KeySpec(KeyType.EC, curve_oid=P256), SIGNER)
    assert "seen-by-opensc" in pkcs11_tool(token, "--list-objects")
    partition.delete("seen-by-opensc")


def test_describe_module(token: SoftHsmToken, partition: Pkcs11Partition) -> None:
    slots = describe_module(token.module_path)
    ours = next(s for s in slots if s["token"] and s["token"]["label"] == token.token_label)
    ecdsa = next(m for m in ours["mechanisms"] if m["name"] == "CKM_ECDSA")
    assert (ecdsa["min_key_size"], ecdsa["max_key_size"]) == (112, 521) and "SIGN" in ecdsa["flags"]
    assert "LOGIN_REQUIRED" in ours["token"]["flags"]


# ---------------------------------------------------------------------------------- threads and processes
def test_threads_sign_concurrently(partition: Pkcs11Partition, signers: dict[str, KeyInfo]) -> None:
    assert partition._module.os_locking  # the CKF_OS_LOCKING_OK re-initialisation took effect
    jobs = [("rsa", SignMechanism(SignScheme.RSA_PSS, HashAlg.SHA256)),
            ("ec", SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)),
            ("ed25519", SignMechanism(SignScheme.EDDSA))]
    errors: list[BaseException] = []
    counts = [0] * 8
    stop = time.monotonic() + 1.0

    def work(index: int) -> None:
        name, mechanism = jobs[index % 3]
        message = b"thread %d" % index
        try:
            while time.monotonic() < stop:
                signature = partition.sign(signers[name].label, mechanism, message)
                if counts[index] % 50 == 0:
                    check_signature(signers[name].public_key or b"", mechanism, message, signature)
                counts[index] += 1
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and all(counts), (errors[:3], counts)


def test_threads_with_serialised_calls(partition: Pkcs11Partition, signers: dict[str, KeyInfo],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback for modules that refuse CKF_OS_LOCKING_OK: one call at a time per process."""
    monkeypatch.setattr(partition._module, "os_locking", False)
    mechanism, errors = SignMechanism(SignScheme.ECDSA, HashAlg.SHA384), []
    stop = time.monotonic() + 0.3

    def work() -> None:
        try:
            while time.monotonic() < stop:
                partition.sign(signers["ec"].label, mechanism, b"serialised")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def _sign_in_child(token: SoftHsmToken, label: str, queue: Any) -> None:
    part = open_partition(token)
    mechanism = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)
    count, stop = 0, time.monotonic() + 0.5
    while time.monotonic() < stop:
        part.sign(label, mechanism, b"child")
        count += 1
    queue.put((count, part.sign(label, mechanism, b"child")))
    part.close()


@pytest.mark.subprocess
def test_processes_share_the_token(token: SoftHsmToken, signers: dict[str, KeyInfo]) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [context.Process(target=_sign_in_child, args=(token, signers["ec"].label, queue))
                for _ in range(2)]
    for child in children:
        child.start()
    results = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    mechanism = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)
    for count, signature in results:
        assert count > 0
        check_signature(signers["ec"].public_key or b"", mechanism, b"child", signature)


def _sign_after_fork(part: Pkcs11Partition, label: str, queue: Any) -> None:
    queue.put(part.sign(label, SignMechanism(SignScheme.EDDSA), b"forked"))


@pytest.mark.subprocess
def test_forked_child_reinitialises(partition: Pkcs11Partition, signers: dict[str, KeyInfo]) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    key, eddsa = signers["ed25519"], SignMechanism(SignScheme.EDDSA)
    child = context.Process(target=_sign_after_fork, args=(partition, key.label, queue))
    child.start()
    signature = queue.get(timeout=30)
    child.join(timeout=30)
    check_signature(key.public_key or b"", eddsa, b"forked", signature)
    assert partition.sign(key.label, eddsa, b"parent")


# ------------------------------------------------------------------------------------ failures and recovery
#: python-pkcs11 0.10.1: a C_FindObjectsInit that fails on a dead session leaves its SearchIter "active", and
#: its __del__ then raises from C_FindObjectsFinal ("Exception ignored"). Harmless; the session is dropped.
SEARCH_ITER_NOISE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

def test_wrong_pin(softhsm_factory: Callable[[str], SoftHsmToken]) -> None:
    token = softhsm_factory("pin-test")
    with pytest.raises(BackendUnavailable) as caught:
        Pkcs11Partition("p", module_path=token.module_path, token_label="pin-test", pin="wrong-pin-7731")
    message = str(caught.value)
    assert "CKR_PIN_INCORRECT" in message and "wrong-pin-7731" not in message, message
    running = open_partition(token)  # as if the PIN changed on the token while running:
    running._pin = "changed-7731"
    with running._pool.cond:
        running._pool.epoch += 1  # its sessions get replaced (closing the last one logs the app out)
    with pytest.raises(BackendUnavailable, match="CKR_PIN_INCORRECT") as caught:
        running.list_labels()
    assert "changed-7731" not in str(caught.value)
    with pytest.raises(BackendUnavailable, match="failed earlier"):  # no second C_Login with that PIN
        running.list_labels()
    running.close()


def test_startup_failures(token: SoftHsmToken) -> None:
    for kwargs in ({"module_path": "/nonexistent/libpkcs11.so", "token_label": "x"},
                   {"module_path": "/bin/true", "token_label": "x"},
                   {"module_path": token.module_path, "token_label": "no-such-token"},
                   {"module_path": token.module_path, "slot_id": 4242}):
        with pytest.raises(BackendUnavailable) as caught:
            Pkcs11Partition("p", pin="secret-pin-0042", **kwargs)  # type: ignore[arg-type]
        message = str(caught.value)
        assert "secret-pin-0042" not in message and message.endswith("."), message
    with pytest.raises(ValueError):
        Pkcs11Partition("p", module_path=token.module_path, pin="1234")


@SEARCH_ITER_NOISE
def test_recovers_when_sessions_are_closed_underneath(partition: Pkcs11Partition,
                                                      signers: dict[str, KeyInfo]) -> None:
    mechanism = SignMechanism(SignScheme.EDDSA)
    for _ in range(3):
        partition.sign(signers["ed25519"].label, mechanism, b"warm")
    slot_id = partition._pool.idle[0].session.token.slot.slot_id
    assert partition._module.raw("C_CloseAllSessions", slot_id) == 0  # logs the application out as well
    signature = partition.sign(signers["ed25519"].label, mechanism, b"after")
    check_signature(signers["ed25519"].public_key or b"", mechanism, b"after", signature)


@SEARCH_ITER_NOISE
def test_recovers_when_module_is_finalised_underneath(partition: Pkcs11Partition,
                                                      signers: dict[str, KeyInfo]) -> None:
    assert partition._module.raw("C_Finalize", None) == 0
    assert "signer-ec" in partition.list_labels()


def test_token_removed_then_back(softhsm_factory: Callable[[str], SoftHsmToken], partition: Pkcs11Partition,
                                 signers: dict[str, KeyInfo], monkeypatch: pytest.MonkeyPatch) -> None:
    """The token's directory moves away: BackendUnavailable; back: the next call works again."""
    token = softhsm_factory("gone-test")
    removable = open_partition(token)
    key = removable.generate("k", KeySpec(KeyType.EC, curve_oid=P256), SIGNER)
    mechanism = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)
    directory = token_directory(token)
    parked = directory.parent.parent / "parked"
    monkeypatch.setattr(backend.partition, "REINIT_INTERVAL", 0.0)
    shutil.move(directory, parked)
    try:
        for _ in range(2):
            with pytest.raises(BackendUnavailable, match=r"gone-test|signing of key 'k'"):
                removable.sign("k", mechanism, b"x")
    finally:
        shutil.move(parked, directory)
    check_signature(key.public_key or b"", mechanism, b"back", removable.sign("k", mechanism, b"back"))
    assert "signer-ec" in partition.list_labels()  # the other partition survived the re-initialisations
    removable.delete("k")
    removable.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        removable.list_labels()


def test_a_key_handle_lost_with_the_token_is_unavailable_not_a_missing_key(
        softhsm_factory: Callable[[str], SoftHsmToken], monkeypatch: pytest.MonkeyPatch) -> None:
    """The token goes away between finding a key and reading it, so the handle is invalid
    (CKR_OBJECT_HANDLE_INVALID): BackendUnavailable (503 / 701), not KeyNotFound (404 / 650) — the key
    was not deleted. (Seen under load over HTTP when a token was pulled: tests/e2e/test_faults.py.)"""
    token = softhsm_factory("handle-gone")
    removable = open_partition(token)
    removable.generate("k", KeySpec(KeyType.EC, curve_oid=P256), SIGNER)
    directory = token_directory(token)
    parked = directory.parent.parent / "parked-handle-gone"
    monkeypatch.setattr(backend.partition, "REINIT_INTERVAL", 0.0)
    find = Pkcs11Partition._key_object

    def found_then_removed(self: Pkcs11Partition, session: Any, label: str, **kwargs: Any) -> Any:
        key = find(self, session, label, **kwargs)
        shutil.move(directory, parked)
        return key

    monkeypatch.setattr(Pkcs11Partition, "_key_object", found_then_removed)
    try:
        with pytest.raises(BackendUnavailable, match="not reachable"):
            removable.get("k")
    finally:
        monkeypatch.setattr(Pkcs11Partition, "_key_object", find)
        if parked.exists():
            shutil.move(parked, directory)
    assert removable.get("k").label == "k"  # the token is back, with the key
    removable.delete("k")
    removable.close()
