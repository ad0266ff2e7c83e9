"""The PKCS#11 partition's key cache and session use, against a throwaway SoftHSM2 token.

A key's object handle, found once, serves every session of the process; the cache answers ``get`` and
signing without a search while the key generation stays the same, re-checks an entry with one attribute read
when it moved, trusts nothing while it is unknown, and holds at most ``key_cache_size`` keys. Signatures are
checked with ``cryptography``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import ObjectClass

from hsmgate.hsm.base import (
    HashAlg,
    KeyAttributes,
    KeyInfo,
    KeyNotFound,
    KeySpec,
    KeyType,
    SignMechanism,
    SignScheme,
)
from hsmgate.hsm.pkcs11 import Pkcs11Partition
from hsmgate.hsm.pkcs11 import module as module_file
from hsmgate.hsm.pkcs11.keycache import KeyCache, KeyEntry
from hsmgate.hsm.pkcs11.mechanisms import M
from hsmgate.hsm.pkcs11.module import Pkcs11Module
from tests.softhsm import SoftHsmToken

pytestmark = pytest.mark.pkcs11

P256 = KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7")
SIGNER = KeyAttributes(sign=True, verify=True, destroyable=True)
ECDSA = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)


class Generation:
    """A key generation the test moves by hand (None: unknown)."""

    def __init__(self) -> None:
        self.value: int | None = 1

    def current(self) -> object | None:
        return self.value


class Counting:
    """Counts the partition's token searches (``_key_object``) and session check-outs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.searches = self.checkouts = 0
        find, checkout = Pkcs11Partition._key_object, Pkcs11Partition._checkout

        def counted_find(partition: Pkcs11Partition, session: Any, label: str, **kwargs: Any) -> Any:
            self.searches += 1
            return find(partition, session, label, **kwargs)

        def counted_checkout(partition: Pkcs11Partition, startup: bool = False) -> Any:
            self.checkouts += 1
            return checkout(partition, startup)

        monkeypatch.setattr(Pkcs11Partition, "_key_object", counted_find)
        monkeypatch.setattr(Pkcs11Partition, "_checkout", counted_checkout)


@pytest.fixture(scope="module")
def token(softhsm_factory: Callable[[str], SoftHsmToken]) -> SoftHsmToken:
    return softhsm_factory("key-cache")


@pytest.fixture()
def generation() -> Generation:
    return Generation()


@pytest.fixture()
def partition(token: SoftHsmToken, generation: Generation) -> Iterator[Pkcs11Partition]:
    part = Pkcs11Partition("cache", module_path=token.module_path, token_label=token.token_label, pin=token.pin,
                           key_generation=generation.current, key_cache_size=3)
    yield part
    part.close()


def verify(info: KeyInfo, data: bytes, signature: bytes) -> None:
    public = serialization.load_der_public_key(info.public_key or b"")
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def test_a_handle_found_in_one_session_signs_in_another(token: SoftHsmToken, partition: Pkcs11Partition) -> None:
    """PKCS#11 token objects' handles belong to the application (v2.40 §6.7.5); SoftHSM2 keeps them per slot:
    the handle C_FindObjects gave on session A signs through C_SignInit on session B."""
    info = partition.generate("shared-handle", P256, SIGNER)
    module = Pkcs11Module.load(token.module_path)
    pkcs11_token = module.lib.get_token(token_label=token.token_label)
    with pkcs11_token.open() as first, pkcs11_token.open() as second:  # the partition logged the app in
        key = first.get_key(object_class=ObjectClass.PRIVATE_KEY, label="shared-handle")
        digest = hashlib.sha256(b"across sessions").digest()
        raw = module.sign(second.handle, M.ECDSA, None, key.handle, digest)
    half = len(raw) // 2
    der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
    verify(info, b"across sessions", der)
    partition.delete("shared-handle")


def test_cached_keys_are_described_and_sign_without_a_search(partition: Pkcs11Partition,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    info = partition.generate("hot", P256, SIGNER)
    counting = Counting(monkeypatch)
    assert partition.get("hot") == info  # the first use looks it up
    assert (counting.searches, counting.checkouts) == (1, 1)
    for _ in range(5):
        assert partition.get("hot") == info
        verify(info, b"m", partition.sign("hot", ECDSA, b"m"))
    # get: no session at all; sign: one session each, no search
    assert (counting.searches, counting.checkouts) == (1, 6)
    partition.delete("hot")


def test_a_moved_generation_rechecks_the_handle_and_a_deletion_elsewhere_is_seen(
        token: SoftHsmToken, partition: Pkcs11Partition, generation: Generation,
        monkeypatch: pytest.MonkeyPatch) -> None:
    info = partition.generate("moved", P256, SIGNER)
    partition.get("moved")
    counting = Counting(monkeypatch)
    generation.value = 2  # some key changed somewhere: the entry is re-checked, not searched again
    assert partition.get("moved") == info
    assert counting.searches == 0
    other = Pkcs11Partition("other", module_path=token.module_path, token_label=token.token_label, pin=token.pin)
    try:
        other.delete("moved")  # another hsmgate instance; it moves the generation (its database commit)
    finally:
        other.close()
    generation.value = 3
    with pytest.raises(KeyNotFound):
        partition.get("moved")
    with pytest.raises(KeyNotFound):
        partition.sign("moved", ECDSA, b"m")


def test_a_handle_gone_under_an_unchanged_generation_is_not_used(
        token: SoftHsmToken, partition: Pkcs11Partition) -> None:
    """Deleted and made again by another application without the generation moving: the remembered handle
    is refused by the token, and signing looks the label up again (the new key signs)."""
    partition.generate("replaced", P256, SIGNER)
    partition.sign("replaced", ECDSA, b"m")
    other = Pkcs11Partition("other", module_path=token.module_path, token_label=token.token_label, pin=token.pin)
    try:
        other.delete("replaced")
        new = other.generate("replaced", P256, SIGNER)
    finally:
        other.close()
    verify(new, b"after", partition.sign("replaced", ECDSA, b"after"))
    assert partition.get("replaced").public_key == new.public_key
    partition.delete("replaced")


def test_an_unknown_generation_trusts_no_entry(partition: Pkcs11Partition, generation: Generation,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    info = partition.generate("unknown", P256, SIGNER)
    partition.get("unknown")
    counting = Counting(monkeypatch)
    generation.value = None
    for _ in range(3):
        assert partition.get("unknown") == info
        verify(info, b"m", partition.sign("unknown", ECDSA, b"m"))
    assert counting.searches == 6
    partition.delete("unknown")


def test_the_cache_holds_at_most_its_size(partition: Pkcs11Partition, monkeypatch: pytest.MonkeyPatch) -> None:
    labels = [f"lru-{i}" for i in range(4)]
    for label in labels:
        partition.generate(label, P256, SIGNER)
    counting = Counting(monkeypatch)
    for label in labels:  # size 3: lru-0 is dropped when lru-3 comes in
        partition.get(label)
    partition.get("lru-3")
    partition.get("lru-1")
    assert counting.searches == 4
    partition.get("lru-0")
    assert counting.searches == 5
    for label in labels:
        partition.delete(label)


def test_key_cache_lru_order_and_bound() -> None:
    cache = KeyCache(2)
    info = KeyInfo(label="x", key_type=KeyType.EC, attributes=SIGNER)
    entries = {label: KeyEntry(n, info, (1, 0, 0)) for n, label in enumerate("abc")}
    cache.put("a", entries["a"])
    cache.put("b", entries["b"])
    assert cache.get("a") is entries["a"]  # a is now the most recently used
    cache.put("c", entries["c"])
    assert (cache.get("b"), len(cache)) == (None, 2)
    cache.forget("a", entries["c"])  # not the entry it holds: kept
    assert cache.get("a") is entries["a"]
    cache.forget("a")
    assert cache.get("a") is None
    assert len(KeyCache(0)) == 0
    disabled = KeyCache(0)
    disabled.put("a", entries["a"])
    assert disabled.get("a") is None
    with pytest.raises(ValueError):
        KeyCache(-1)


def test_signature_buffer_grows_for_large_signatures(partition: Pkcs11Partition,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """C_Sign answers CKR_BUFFER_TOO_SMALL for a signature above the first buffer; the second call fits."""
    info = partition.generate("small-buffer", P256, SIGNER)
    monkeypatch.setattr(module_file, "SIGNATURE_BUFFER", 16)
    verify(info, b"m", partition.sign("small-buffer", ECDSA, b"m"))
    partition.delete("small-buffer")
