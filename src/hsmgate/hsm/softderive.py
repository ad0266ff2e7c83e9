"""BIP-32 / SLIP-0010 derivation for the soft token, on bip-utils (its secp256k1 arithmetic runs on
coincurve, i.e. libsecp256k1).

A master's sealed material is the *seed* it was made from, tagged with the scheme and curve::

    b"hsmgate-hd/v1\\x00" ‖ scheme (UTF-8) ‖ b"\\x00" ‖ curve OID (ASCII) ‖ b"\\x00" ‖ seed

PKCS#8 DER (every other asymmetric key's material) starts with 0x30, so the tag cannot collide.
Children are derived on demand from the seed; a persisted child is stored as an ordinary PKCS#8 key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from bip_utils import (
    Bip32ChainCode,
    Bip32Depth,
    Bip32KeyData,
    Bip32KeyError,
    Bip32KeyIndex,
    Bip32Slip10Ed25519,
    Bip32Slip10Nist256p1,
    Bip32Slip10Secp256k1,
)
from bip_utils.bip.bip32.base import Bip32Base
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from hsmgate.hsm.base import InvalidInput, UnsupportedByBackend
from hsmgate.hsm.derivation import SEED_BITS, DerivationPath, DerivationScheme, NodeInfo

SECP256K1_OID = "1.3.132.0.10"
P256_OID = "1.2.840.10045.3.1.7"
ED25519_OID = "1.3.101.112"
#: Group orders of the ECDSA curves, for SLIP-0010's invalid-key rule (:func:`_child`).
_ORDERS = {
    SECP256K1_OID: 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    P256_OID: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}

#: The bip-utils class of each SLIP-0010 curve.
SLIP10_CURVES: dict[str, type[Bip32Base]] = {
    SECP256K1_OID: Bip32Slip10Secp256k1,
    P256_OID: Bip32Slip10Nist256p1,
    ED25519_OID: Bip32Slip10Ed25519,
}
#: (scheme, curve OID) pairs the soft token derives.
SUPPORTED: frozenset[tuple[DerivationScheme, str]] = frozenset(
    (DerivationScheme.SLIP10, oid) for oid in SLIP10_CURVES)

_TAG = b"hsmgate-hd/v1\x00"

ChildPrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def is_master_material(material: bytes) -> bool:
    return material.startswith(_TAG)


def master_material(scheme: DerivationScheme, curve_oid: str, seed: bytes) -> bytes:
    """The sealed-material form of a master made from ``seed``; InvalidInput for a seed outside
    128–512 bits, UnsupportedByBackend for a curve SLIP-0010 does not cover."""
    if (scheme, curve_oid) not in SUPPORTED:
        raise UnsupportedByBackend(f"{scheme} derivation is not available on curve {curve_oid}")
    low, high = SEED_BITS
    if not low <= len(seed) * 8 <= high:
        raise InvalidInput(f"the seed has {len(seed) * 8} bits; {low} to {high} are allowed")
    return b"".join((_TAG, scheme.value.encode(), b"\x00", curve_oid.encode(), b"\x00", seed))


@dataclass(frozen=True, slots=True)
class Master:
    """An unsealed master node."""

    scheme: DerivationScheme
    curve_oid: str
    root: Bip32Base


@dataclass(frozen=True, slots=True)
class Node:
    """A node (master or child): its private key for ``cryptography``, and its public facts."""

    private: ChildPrivateKey
    info: NodeInfo


def load_master(material: bytes) -> Master:
    body = material[len(_TAG):]
    scheme, curve, seed = body.split(b"\x00", 2)
    curve_oid = curve.decode()
    return Master(DerivationScheme(scheme.decode()), curve_oid, SLIP10_CURVES[curve_oid].FromSeed(seed))


def node(master: Master, path: DerivationPath | None = None) -> Node:
    """The master node itself (``path`` None) or its child at ``path``. InvalidInput for a
    non-hardened index on Ed25519 (SLIP-0010 defines none)."""
    current = master.root
    order = _ORDERS.get(master.curve_oid)
    try:
        for index in path.indexes if path else ():
            current = _child(current, index, order)
    except Bip32KeyError as exc:
        raise InvalidInput(f"derivation path {path} cannot be derived on {master.curve_oid}: {exc}") from None
    raw = current.PrivateKey().Raw().ToBytes()
    private: ChildPrivateKey
    if master.curve_oid == ED25519_OID:
        private = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
    else:
        curve = ec.SECP256K1() if master.curve_oid == SECP256K1_OID else ec.SECP256R1()
        private = ec.derive_private_key(int.from_bytes(raw, "big"), curve)
    xpub = current.PublicKey().ToExtended() if master.curve_oid == SECP256K1_OID else None
    info = NodeInfo(master.scheme, current.ChainCode().ToBytes(), current.Depth().ToInt(),
                    current.Index().ToInt(), current.ParentFingerPrint().ToBytes(), xpub)
    return Node(private, info)


def _child(parent: Bip32Base, index: int, order: int | None) -> Bip32Base:
    """CKDpriv of SLIP-0010. bip-utils reduces ``parse256(IL) + k`` modulo n without checking
    ``IL < n``; SLIP-0010 then derives again from ``0x01 ‖ IR ‖ ser32(i)`` (its "derivation retry"
    vector on NIST P-256, where this happens with probability about 2^-32). This checks IL first and
    builds the retried child itself; every other step is bip-utils' own ``ChildKey``."""
    if order is None:  # Ed25519: every 32-byte IL is a valid key
        return parent.ChildKey(index)
    chain_code = parent.ChainCode().ToBytes()
    private = parent.PrivateKey().Raw().ToBytes()
    serial = index.to_bytes(4, "big")
    data = (b"\x00" + private if index >= 0x8000_0000 else parent.PublicKey().RawCompressed().ToBytes()) + serial
    digest = hmac.new(chain_code, data, hashlib.sha512).digest()
    retried = False
    while True:
        il, ir = int.from_bytes(digest[:32], "big"), digest[32:]
        child = (il + int.from_bytes(private, "big")) % order
        if il < order and child != 0:
            break
        digest = hmac.new(chain_code, b"\x01" + ir + serial, hashlib.sha512).digest()
        retried = True
    if not retried:
        return parent.ChildKey(index)
    key_data = Bip32KeyData(Bip32Depth(parent.Depth().ToInt() + 1), Bip32KeyIndex(index),
                            Bip32ChainCode(ir), parent.FingerPrint())
    return type(parent).FromPrivateKey(child.to_bytes(32, "big"), key_data)
