"""A backend that declares no cipher, wrap, HMAC or import capability — as the PKCS#11 backend does
until its own pass, inheriting the base class's refusals — makes the API answer with the TSB error
before any backend call: 629 ``res.error.unsupported.cipher`` for ciphers, 611
``res.error.unsupported.operation`` for the rest. Signing, which it does declare, keeps working."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec as ec_keys

from hsmgate import bootstrap
from hsmgate.hsm.base import (
    Capabilities,
    KeyAttributes,
    KeyInfo,
    KeySpec,
    Partition,
    SignMechanism,
    TokenIdentity,
)
from tests.helpers import LiveServer, assert_tsb_error, b64, soft_settings, unb64
from tests.domain.operations.helpers import OPEN, create_key, public_key_der


class SignOnlyPartition(Partition):
    """Delegates the abstract operations; inherits every optional one (encrypt, wrap, hmac,
    import_key, …) from :class:`Partition`, which raise UnsupportedByBackend."""

    def __init__(self, inner: Partition) -> None:
        self._inner = inner
        self.name = inner.name

    def identity(self) -> TokenIdentity:
        return self._inner.identity()

    def capabilities(self) -> Capabilities:
        return replace(self._inner.capabilities(), backend="sign-only", cipher=frozenset(), wrap=frozenset(),
                       hmac=frozenset(), key_import=frozenset())

    def generate(self, label: str, spec: KeySpec, attributes: KeyAttributes, key_id: bytes | None = None) -> KeyInfo:
        return self._inner.generate(label, spec, attributes, key_id)

    def list_labels(self) -> list[str]:
        return self._inner.list_labels()

    def get(self, label: str) -> KeyInfo:
        return self._inner.get(label)

    def delete(self, label: str) -> None:
        self._inner.delete(label)

    def sign(self, label: str, mechanism: SignMechanism, data: bytes, *, context: bytes | None = None) -> bytes:
        return self._inner.sign(label, mechanism, data, context=context)

    def verify(self, label: str, mechanism: SignMechanism, data: bytes, signature: bytes, *,
               context: bytes | None = None) -> bool:
        return self._inner.verify(label, mechanism, data, signature, context=context)

    def generate_random(self, length: int) -> bytes:
        return self._inner.generate_random(length)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server whose every partition is the soft token behind :class:`SignOnlyPartition`."""
    opened = bootstrap.open_partition
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bootstrap, "open_partition",
                      lambda settings, db, **options: SignOnlyPartition(opened(settings, db, **options)))
        server = LiveServer(soft_settings(tmp_path_factory.mktemp("sign-only")))
    with server, server.client() as client:
        yield client


def test_cipher_refused_with_629(bare: httpx.Client) -> None:
    aes = create_key(bare, {"algorithm": "AES", "keySize": 256})
    for algorithm in ("AES_GCM", "AES_CBC_NO_PADDING", "AES"):
        body = assert_tsb_error(bare.post("/v1/encrypt", json={"encryptRequest": {
                   "payload": b64(b"x" * 16), "encryptKeyName": aes, "cipherAlgorithm": algorithm}}), 629, 400)
        assert body["reason"] == "res.error.unsupported.cipher" and "sign-only" in body["message"]
    assert_tsb_error(bare.post("/v1/synchronousDecrypt", json={"decryptRequest": {
               "encryptedPayload": b64(b"x" * 32), "decryptKeyName": aes, "cipherAlgorithm": "AES_GCM",
               "initializationVector": b64(b"i" * 12)}}), 629, 400)


def test_wrap_hmac_import_refused_with_611(bare: httpx.Client) -> None:
    aes = create_key(bare, {"algorithm": "AES", "keySize": 256})
    other = create_key(bare, {"algorithm": "AES", "keySize": 128})
    body = assert_tsb_error(bare.post("/v1/wrap", json={"wrapKeyRequest": {
               "keyToBeWrapped": other, "wrapKeyName": aes, "wrapMethod": "AES_WRAP"}}), 611, 400)
    assert "AES_WRAP" in body["message"]
    assert_tsb_error(bare.post("/v1/synchronousUnwrap", json={"unwrapKeyRequest": {
               "wrappedKey": b64(b"w" * 40), "label": "never", "unwrapKeyName": aes, "wrapMethod": "AES_WRAP_PAD",
               "attributes": OPEN}}), 611, 400)
    hmac_key = create_key(bare, {"algorithm": "HMACSHA256"})
    assert_tsb_error(
        bare.post("/v1/synchronousHmac", json={"hmacRequest": {"keyName": hmac_key, "payload": b64(b"x")}}),
            611, 400)
    assert_tsb_error(bare.post("/v1/key/import/plain", json={"label": "imported", "algorithm": "AES",
                                                             "secretKey": b64(b"k" * 16), "attributes": OPEN}), 611, 400)
    assert "never" not in bare.get("/v1/key").json() and "imported" not in bare.get("/v1/key").json()


def test_export_falls_to_the_backend_refusal(bare: httpx.Client) -> None:
    """Export has no capability flag: the inherited Partition.export_key answers, mapped to 611."""
    aes = create_key(bare, {"algorithm": "AES", "keySize": 256})
    assert_tsb_error(bare.post("/v1/key/export/plain", json={"label": aes}), 611, 400)


def test_signing_still_works(bare: httpx.Client) -> None:
    ec = create_key(bare, {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"})
    response = bare.post("/v1/synchronousSign", json={"signRequest": {
        "payload": b64(b"x"), "signKeyName": ec, "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
    assert response.status_code == 200, response.text
    public = serialization.load_der_public_key(public_key_der(bare, ec))
    assert isinstance(public, ec_keys.EllipticCurvePublicKey)
    public.verify(unb64(response.json()["signature"]), b"x", ec_keys.ECDSA(hashes.SHA256()))


def test_the_base_class_defaults_refuse() -> None:
    """The base-class defaults themselves raise UnsupportedByBackend (the PKCS#11 state today)."""
    from hsmgate.hsm.base import CipherMechanism, CipherMode, UnsupportedByBackend, WrapMechanism, WrapMode

    class Nothing(SignOnlyPartition):
        pass

    partition = Nothing.__new__(Nothing)
    with pytest.raises(UnsupportedByBackend):
        partition.encrypt("k", CipherMechanism(CipherMode.AES_GCM), b"x")
    with pytest.raises(UnsupportedByBackend):
        partition.wrap("k", WrapMechanism(WrapMode.AES_KW), "t")
    with pytest.raises(UnsupportedByBackend):
        partition.hmac("k", b"x")
    with pytest.raises(UnsupportedByBackend):
        partition.export_key("k")
