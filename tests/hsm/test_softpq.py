"""Unit tests of the soft token's post-quantum module (``hsm/softpq.py``) and its wiring into the
soft partition: key formats, SPKI, interoperability with an independent implementation, ML-KEM
wrapping, and the refusals of a backend that declares no post-quantum capability."""

from __future__ import annotations

import hashlib
import importlib
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from asn1crypto import core
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem
from pqcrypto import HashAlgorithm, InvalidSignatureError

from hsmgate.domain import errors
from hsmgate.domain.algorithms import KEY_ALGORITHMS, SIGNATURE_ALGORITHMS
from hsmgate.domain.kem import KemService
from hsmgate.domain.keys import KeyService, NewKey
from hsmgate.domain.signing import SigningService
from hsmgate.hsm import softpq
from hsmgate.hsm.base import (
    Capabilities,
    DecryptFailed,
    InvalidInput,
    KeyAttributes,
    KeySpec,
    KeyType,
    OperationNotPermitted,
    PreHash,
    SignMechanism,
    SignScheme,
    WrapMechanism,
    WrapMode,
)
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository
from tests.hsm import slhdsa_ref

PURE_ML_DSA = SignMechanism(SignScheme.ML_DSA)
EXTERNAL_MU = SignMechanism(SignScheme.ML_DSA, prehashed=True)
PURE_SLH_DSA = SignMechanism(SignScheme.SLH_DSA)
PQCRYPTO_HASH = {
    PreHash.SHA224: HashAlgorithm.Sha224, PreHash.SHA256: HashAlgorithm.Sha256,
    PreHash.SHA384: HashAlgorithm.Sha384, PreHash.SHA512: HashAlgorithm.Sha512,
    PreHash.SHA3_224: HashAlgorithm.Sha3_224, PreHash.SHA3_256: HashAlgorithm.Sha3_256,
    PreHash.SHA3_384: HashAlgorithm.Sha3_384, PreHash.SHA3_512: HashAlgorithm.Sha3_512,
    PreHash.SHAKE128: HashAlgorithm.Shake128, PreHash.SHAKE256: HashAlgorithm.Shake256,
}
ML_DSA_PUBLIC = {KeyType.ML_DSA_44: mldsa.MLDSA44PublicKey, KeyType.ML_DSA_65: mldsa.MLDSA65PublicKey,
                 KeyType.ML_DSA_87: mldsa.MLDSA87PublicKey}


class AlgorithmIdentifier(core.Sequence):
    _fields: ClassVar[list[tuple[Any, ...]]] = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class SubjectPublicKeyInfo(core.Sequence):
    _fields: ClassVar[list[tuple[Any, ...]]] = [("algorithm", AlgorithmIdentifier), ("subject_public_key", core.BitString)]


def parse_spki(der: bytes) -> tuple[str, Any, bytes]:
    """(OID, parameters, raw key) of a DER SPKI, parsed strictly by asn1crypto."""
    spki = SubjectPublicKeyInfo.load(der, strict=True)
    assert spki.dump(force=True) == der, "not DER"
    bits = spki["subject_public_key"].contents
    assert bits[0] == 0, "the BIT STRING must have no unused bits"
    return spki["algorithm"]["algorithm"].dotted, spki["algorithm"]["parameters"].native, bytes(bits[1:])


def pq_module(key_type: KeyType) -> Any:
    params = softpq.PARAMETER_SETS[key_type]
    package = "pqcrypto.kem" if params.family == "ML-KEM" else "pqcrypto.sign"
    return importlib.import_module(f"{package}.{params.module}")


# -- parameter table and key formats ---------------------------------------------------------------


def test_parameter_sets_agree_with_registry_and_libraries() -> None:
    assert set(softpq.PARAMETER_SETS) == {t for t in KeyType if t.is_post_quantum}
    for key_type, params in softpq.PARAMETER_SETS.items():
        row = KEY_ALGORITHMS[key_type.value]
        assert (row.key_type, row.oid, row.sizes) == (key_type, params.oid, frozenset())
        module = pq_module(key_type)
        assert module.PUBLIC_KEY_SIZE == params.public_key_size
        if params.signature_size is not None:
            assert module.SIGNATURE_SIZE == params.signature_size
        if params.ciphertext_size is not None:
            assert module.CIPHERTEXT_SIZE == params.ciphertext_size
    # FIPS 205 order: SHA2 128s,128f,192s,192f,256s,256f then SHAKE, arcs 20..31
    slh = [p for p in softpq.PARAMETER_SETS.values() if p.family == "SLH-DSA"]
    assert [p.oid.rsplit(".", 1)[1] for p in slh] == [str(a) for a in range(20, 32)]
    assert [p.key_type.value for p in slh] == [f"SLH-DSA-{h}-{n}{v}" for h in ("SHA2", "SHAKE")
                                               for n in (128, 192, 256) for v in "sf"]


@pytest.mark.parametrize("key_type", list(softpq.PARAMETER_SETS), ids=str)
def test_generate_gives_spki_with_nist_oid_and_recorded_format(key_type: KeyType) -> None:
    params = softpq.PARAMETER_SETS[key_type]
    material, spki = softpq.generate(key_type)
    oid, parameters, raw = parse_spki(spki)
    assert oid == params.oid and parameters is None and len(raw) == params.public_key_size
    key = softpq.load(key_type, material)
    assert key.public_key == raw and key.spki == spki
    expected_format = {
        "ML-DSA": softpq.FORMAT_ML_DSA_SEED, "SLH-DSA": softpq.FORMAT_PQCRYPTO_SK,
        "ML-KEM": softpq.FORMAT_ML_KEM_SEED if params.library == "cryptography" else softpq.FORMAT_PQCRYPTO_SK,
    }[params.family]
    assert softpq.material_format(material) == expected_format
    if params.library == "cryptography":  # our SPKI is byte for byte cryptography's own
        public = serialization.load_der_public_key(spki)
        assert public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == spki
    if expected_format == softpq.FORMAT_ML_DSA_SEED:
        assert len(material) == len(softpq.MATERIAL_MAGIC) + len(expected_format) + 1 + 32
    if expected_format == softpq.FORMAT_ML_KEM_SEED:
        assert len(material) == len(softpq.MATERIAL_MAGIC) + len(expected_format) + 1 + 64


def test_load_refuses_foreign_material() -> None:
    material, _ = softpq.generate(KeyType.ML_DSA_44)
    with pytest.raises(InvalidInput):
        softpq.load(KeyType.ML_DSA_65, material.replace(b"ml-dsa-seed", b"pqcrypto-sk"))
    with pytest.raises(InvalidInput):
        softpq.load(KeyType.ML_DSA_44, material[:-1])
    with pytest.raises(InvalidInput):
        softpq.load(KeyType.SLH_DSA_SHA2_128F, material)
    with pytest.raises(InvalidInput):
        softpq.load(KeyType.ML_DSA_44, b"\x30\x00")
    kem, _ = softpq.generate(KeyType.ML_KEM_512)
    broken = bytearray(kem)
    broken[-40] ^= 1  # inside H(ek)
    with pytest.raises(InvalidInput):
        softpq.load(KeyType.ML_KEM_512, bytes(broken))


def test_spki_of_the_wrong_type_is_refused() -> None:
    _, spki = softpq.generate(KeyType.ML_DSA_44)
    with pytest.raises(InvalidInput):
        softpq.public_key_from_spki(KeyType.ML_DSA_65, spki)
    with pytest.raises(InvalidInput):
        softpq.encapsulate(KeyType.ML_KEM_512, spki)


# -- ML-DSA interop with pqcrypto (both directions) -----------------------------------------------


@pytest.mark.parametrize("key_type", sorted(softpq.ML_DSA_TYPES), ids=str)
def test_ml_dsa_pure_interoperates_with_pqcrypto(key_type: KeyType) -> None:
    module = pq_module(key_type)
    material, spki = softpq.generate(key_type)
    key = softpq.load(key_type, material)
    context = b"hsmgate ctx"
    signature = softpq.sign(key, PURE_ML_DSA, b"message", context)  # made by cryptography
    assert len(signature) == softpq.PARAMETER_SETS[key_type].signature_size
    assert softpq.verify(key_type, spki, PURE_ML_DSA, b"message", signature, context)
    module.verify(key.public_key, b"message", signature, context=context)  # checked by pqcrypto
    with pytest.raises(InvalidSignatureError):
        module.verify(key.public_key, b"message", signature, context=b"other")
    # the reverse: pqcrypto signs, hsmgate (cryptography) verifies
    public, secret = module.keygen()
    foreign = module.sign(secret, b"message", context=context)
    foreign_spki = softpq.spki_der(key_type, public)
    assert softpq.verify(key_type, foreign_spki, PURE_ML_DSA, b"message", foreign, context)
    assert not softpq.verify(key_type, foreign_spki, PURE_ML_DSA, b"message", foreign, None)


@pytest.mark.parametrize("prehash", list(PreHash), ids=str)
def test_hash_ml_dsa_interoperates_with_pqcrypto(prehash: PreHash) -> None:
    """cryptography has no HashML-DSA: hsmgate builds μ of FIPS 204 Algorithm 4 and signs it with
    ``sign_mu``. pqcrypto's HashML-DSA (given PH(M)) must agree in both directions."""
    key_type = KeyType.ML_DSA_44
    module, mechanism, context = pq_module(key_type), SignMechanism(SignScheme.HASH_ML_DSA, prehash), b"c"
    material, _ = softpq.generate(key_type)
    key = softpq.load(key_type, material)
    digest = softpq.prehash(prehash, b"message")
    assert len(digest) == {PreHash.SHAKE128: 32, PreHash.SHAKE256: 64}.get(prehash, hashlib.new(prehash.value).digest_size)
    signature = softpq.sign(key, mechanism, b"message", context)
    module.verify(key.public_key, digest, signature, context=context, hash_algorithm=PQCRYPTO_HASH[prehash])
    with pytest.raises(InvalidSignatureError):  # it is not a pure ML-DSA signature
        module.verify(key.public_key, b"message", signature, context=context)
    public, secret = module.keygen()
    foreign = module.sign(secret, digest, context=context, hash_algorithm=PQCRYPTO_HASH[prehash])
    assert softpq.verify(key_type, softpq.spki_der(key_type, public), mechanism, b"message", foreign, context)
    assert not softpq.verify(key_type, softpq.spki_der(key_type, public), mechanism, b"messagE", foreign, context)


def test_external_mu_signature_is_a_pure_ml_dsa_signature() -> None:
    key_type = KeyType.ML_DSA_87
    material, spki = softpq.generate(key_type)
    assert softpq.public_key_from_spki(key_type, spki) == softpq.load(key_type, material).public_key
    key = softpq.load(key_type, material)
    context, message = b"ctx", b"message"
    tr = hashlib.shake_256(key.public_key).digest(64)
    mu = hashlib.shake_256(tr + b"\x00" + bytes([len(context)]) + context + message).digest(64)
    signature = softpq.sign(key, EXTERNAL_MU, mu)
    pq_module(key_type).verify(key.public_key, message, signature, context=context)
    ML_DSA_PUBLIC[key_type].from_public_bytes(key.public_key).verify(signature, message, context)
    assert softpq.verify(key_type, spki, EXTERNAL_MU, mu, signature)
    with pytest.raises(InvalidInput):
        softpq.sign(key, EXTERNAL_MU, mu[:63])
    with pytest.raises(InvalidInput):
        softpq.sign(key, EXTERNAL_MU, mu, b"ctx")


def test_context_longer_than_255_bytes_is_refused() -> None:
    key = softpq.load(KeyType.ML_DSA_44, softpq.generate(KeyType.ML_DSA_44)[0])
    softpq.sign(key, PURE_ML_DSA, b"m", b"x" * 255)
    with pytest.raises(InvalidInput):
        softpq.sign(key, PURE_ML_DSA, b"m", b"x" * 256)


# -- SLH-DSA: checked by the independent FIPS 205 verifier in tests/hsm/slhdsa_ref.py --------------


@pytest.mark.parametrize("prehash", list(PreHash), ids=str)
def test_hash_slh_dsa_matches_fips_205(prehash: PreHash) -> None:
    key_type = KeyType.SLH_DSA_SHAKE_128F if prehash.value.startswith("shake") else KeyType.SLH_DSA_SHA2_128F
    material, spki = softpq.generate(key_type)
    key = softpq.load(key_type, material)
    mechanism = SignMechanism(SignScheme.HASH_SLH_DSA, prehash)
    signature = softpq.sign(key, mechanism, b"message", b"ctx")
    assert slhdsa_ref.verify(key_type.value, key.public_key, b"message", signature, b"ctx", prehash.value)
    assert not slhdsa_ref.verify(key_type.value, key.public_key, b"message", signature, b"ctx", None)
    assert softpq.verify(key_type, spki, mechanism, b"message", signature, b"ctx")
    assert not softpq.verify(key_type, spki, mechanism, b"message", signature, b"ctX")


def test_reference_verifier_rejects_what_it_should() -> None:
    key_type = KeyType.SLH_DSA_SHA2_192F
    key = softpq.load(key_type, softpq.generate(key_type)[0])
    signature = softpq.sign(key, PURE_SLH_DSA, b"message", b"")
    assert slhdsa_ref.verify(key_type.value, key.public_key, b"message", signature)
    tampered = bytearray(signature)
    tampered[len(signature) // 2] ^= 0x01
    assert not slhdsa_ref.verify(key_type.value, key.public_key, b"message", bytes(tampered))
    assert not slhdsa_ref.verify(key_type.value, key.public_key, b"message", signature, b"c")


# -- ML-KEM ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", sorted(softpq.ML_KEM_TYPES), ids=str)
def test_ml_kem_interoperates(key_type: KeyType) -> None:
    material, spki = softpq.generate(key_type)
    key = softpq.load(key_type, material)
    ciphertext, shared = softpq.encapsulate(key_type, spki)
    assert len(ciphertext) == softpq.PARAMETER_SETS[key_type].ciphertext_size and len(shared) == 32
    assert softpq.decapsulate(key, ciphertext) == shared
    ct2, ss2 = pq_module(key_type).encaps(key.public_key)  # pqcrypto: (ciphertext, secret)
    assert softpq.decapsulate(key, ct2) == ss2
    if key_type is not KeyType.ML_KEM_512:  # cryptography: (secret, ciphertext)
        public = {KeyType.ML_KEM_768: mlkem.MLKEM768PublicKey, KeyType.ML_KEM_1024: mlkem.MLKEM1024PublicKey}
        ss3, ct3 = public[key_type].from_public_bytes(key.public_key).encapsulate()
        assert softpq.decapsulate(key, ct3) == ss3
    with pytest.raises(InvalidInput):
        softpq.decapsulate(key, ciphertext[:-1])
    other = bytearray(ciphertext)
    other[0] ^= 1
    assert softpq.decapsulate(key, bytes(other)) != shared  # implicit rejection


@pytest.mark.parametrize("key_type", sorted(softpq.ML_KEM_TYPES), ids=str)
def test_kem_wrap_round_trip(key_type: KeyType) -> None:
    material, spki = softpq.generate(key_type)
    key = softpq.load(key_type, material)
    secret = secrets.token_bytes(32)
    wrapped = softpq.kem_wrap(key_type, spki, secret)
    size = softpq.PARAMETER_SETS[key_type].ciphertext_size or 0
    assert len(wrapped) == size + 40  # KWP of 32 bytes: 8-byte AIV + 32
    assert softpq.kem_unwrap(key, wrapped) == secret
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(DecryptFailed):
        softpq.kem_unwrap(key, bytes(tampered))
    other = softpq.load(key_type, softpq.generate(key_type)[0])
    with pytest.raises(DecryptFailed):
        softpq.kem_unwrap(other, wrapped)


# -- the soft partition ----------------------------------------------------------------------------


@pytest.fixture()
def token(tmp_path: Path) -> tuple[SoftPartition, Database, bytes]:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    db.migrate()
    master = secrets.token_bytes(32)
    return SoftPartition("p", repository=SoftKeyRepository(db, "p"), master_key=master), db, master


def test_pq_keys_survive_a_restart(token: tuple[SoftPartition, Database, bytes]) -> None:
    partition, db, master = token
    attributes = KeyAttributes(sign=True, decrypt=True)
    signer = partition.generate("sig", KeySpec(KeyType.ML_DSA_65), attributes)
    kem = partition.generate("kem", KeySpec(KeyType.ML_KEM_512), attributes)
    assert signer.size is None and signer.attributes.never_extractable
    ciphertext, shared = softpq.encapsulate(KeyType.ML_KEM_512, kem.public_key or b"")
    reopened = SoftPartition("p", repository=SoftKeyRepository(db, "p"), master_key=master)
    signature = reopened.sign("sig", PURE_ML_DSA, b"data", context=b"c")
    assert reopened.verify("sig", PURE_ML_DSA, b"data", signature, context=b"c")
    assert partition.verify("sig", PURE_ML_DSA, b"data", signature, context=b"c")
    assert reopened.decapsulate("kem", ciphertext) == shared


def test_decapsulate_needs_decrypt_derive_or_unwrap(token: tuple[SoftPartition, Database, bytes]) -> None:
    partition, _, _ = token
    for label, attributes in (("unwrap-only", KeyAttributes(unwrap=True)), ("derive", KeyAttributes(derive=True)),
                              ("decrypt", KeyAttributes(decrypt=True)), ("sign-only", KeyAttributes(sign=True))):
        partition.generate(label, KeySpec(KeyType.ML_KEM_768), attributes)
    for label in ("unwrap-only", "derive", "decrypt"):
        ciphertext, shared = softpq.encapsulate(KeyType.ML_KEM_768, partition.get(label).public_key or b"")
        assert partition.decapsulate(label, ciphertext) == shared
    with pytest.raises(OperationNotPermitted):
        partition.decapsulate("sign-only", ciphertext)


def test_ml_kem_wraps_and_unwraps_every_kind_of_key(token: tuple[SoftPartition, Database, bytes]) -> None:
    partition, _, _ = token
    kem_wrap = WrapMechanism(WrapMode.ML_KEM_AES_KWP)
    partition.generate("kek", KeySpec(KeyType.ML_KEM_1024), KeyAttributes(unwrap=True, wrap=True))
    exportable = KeyAttributes(sign=True, decrypt=True, extractable=True, sensitive=False)
    targets = {
        "aes": KeySpec(KeyType.AES, 256), "ec": KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7"),
        "ed": KeySpec(KeyType.ED, curve_oid="1.3.101.113"), "rsa": KeySpec(KeyType.RSA, 2048),
        "mldsa": KeySpec(KeyType.ML_DSA_44), "slh": KeySpec(KeyType.SLH_DSA_SHA2_128F),
    }
    for name, spec in targets.items():
        original = partition.generate(name, spec, exportable)
        wrapped = partition.wrap("kek", kem_wrap, name)
        restored = partition.unwrap("kek", kem_wrap, wrapped, label=f"{name}-copy", spec=spec,
                                    attributes=KeyAttributes(sign=True, decrypt=True))
        assert (restored.key_type, restored.size, restored.curve_oid, restored.public_key) == \
            (original.key_type, original.size, original.curve_oid, original.public_key)
        assert not restored.attributes.never_extractable and not restored.attributes.always_sensitive
    assert partition._load("aes-copy").secret == partition._load("aes").secret
    signature = partition.sign("mldsa-copy", PURE_ML_DSA, b"x")
    assert partition.verify("mldsa", PURE_ML_DSA, b"x", signature)
    # wrong target type on unwrap, non-extractable target, missing attributes
    wrapped = partition.wrap("kek", kem_wrap, "aes")
    with pytest.raises(DecryptFailed):
        partition.unwrap("kek", kem_wrap, wrapped, label="bad", spec=KeySpec(KeyType.ML_DSA_44),
                         attributes=KeyAttributes(sign=True))
    partition.generate("locked", KeySpec(KeyType.AES, 128), KeyAttributes(decrypt=True))
    with pytest.raises(OperationNotPermitted):
        partition.wrap("kek", kem_wrap, "locked")
    partition.generate("no-wrap", KeySpec(KeyType.ML_KEM_512), KeyAttributes(unwrap=True))
    with pytest.raises(OperationNotPermitted):
        partition.wrap("no-wrap", kem_wrap, "aes")
    partition.generate("no-unwrap", KeySpec(KeyType.ML_KEM_1024), KeyAttributes(decrypt=True, wrap=True))
    with pytest.raises(OperationNotPermitted):
        partition.unwrap("no-unwrap", kem_wrap, partition.wrap("no-unwrap", kem_wrap, "aes"), label="x",
                         spec=KeySpec(KeyType.AES, 256), attributes=KeyAttributes(decrypt=True))
    assert partition.capabilities().can_wrap(KeyType.ML_KEM_512, kem_wrap)


# -- a backend without post-quantum capabilities (the PKCS#11 backend today) ------------------------


class ClassicalOnly(SoftPartition):
    """A soft partition that declares no post-quantum capability, as the PKCS#11 backend does."""

    def capabilities(self) -> Capabilities:
        caps = super().capabilities()
        return replace(
            caps, backend="pkcs11",
            key_specs={t: s for t, s in caps.key_specs.items() if not t.is_post_quantum},
            sign=frozenset((t, m) for t, m in caps.sign if not t.is_post_quantum),
            kem=frozenset(), wrap=frozenset(),
        )


def test_backend_without_pq_capabilities_refuses_with_613_and_611(
        token: tuple[SoftPartition, Database, bytes]) -> None:
    partition, db, master = token
    partition.generate("mldsa", KeySpec(KeyType.ML_DSA_44), KeyAttributes(sign=True))
    partition.generate("kem", KeySpec(KeyType.ML_KEM_768), KeyAttributes(decrypt=True))
    classical = ClassicalOnly("p", repository=SoftKeyRepository(db, "p"), master_key=master)
    keys = KeyService(classical, metadata=None, attestation_key_name="attestation-key")  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidKeyType) as created:
        keys.create(NewKey("new", "ML-DSA-65", None, None, None, KeyAttributes(sign=True)))
    assert created.value.code == 613
    with pytest.raises(errors.UnsupportedOperation) as signed:
        SigningService(classical).sign(label="mldsa", algorithm="ML_DSA", payload=b"x")
    assert signed.value.code == 611
    with pytest.raises(errors.UnsupportedOperation):
        KemService(classical).decapsulate(label="kem", ciphertext=bytes(1088))
    assert set(SIGNATURE_ALGORITHMS) >= {"ML_DSA", "SLH_DSA", "DILITHIUM", "SPHINCS_PLUS", "ML_DSA_M"}
