"""Blockchain addresses of SKA keys (``addressFormat``, ``addressTruncated``; reference §4.1, §7).

The TSB reports the *hash base* of an address: no version byte, checksum or text encoding.

* ``ETH``: the last 20 bytes of Keccak-256 (pre-standard Keccak, as Ethereum) over the uncompressed
  EC point without its leading ``0x04``.
* ``BTC``: HASH160 = RIPEMD-160(SHA-256(compressed EC point)), the P2PKH/P2WPKH hash.

Both need an EC secp256k1 key (613 otherwise). ``XLM``, ``XRP`` and ``IOTA`` are refused with 605.

hsmgate extension (:func:`address_text`): the full address a wallet shows, beside the hash —
``BTC``: bech32 P2WPKH (witness v0, ``bc1q…``, BIP-173) of the same HASH160; ``ETH``: ``0x`` and the
EIP-55 mixed-case checksum of the same 20 bytes. Encoded with bip-utils.
"""

from __future__ import annotations

import hashlib

from bip_utils import EthAddrEncoder, P2WPKHAddrEncoder
from Crypto.Hash import RIPEMD160, keccak
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsmgate.domain import errors
from hsmgate.domain.algorithms import SECP256K1_OID
from hsmgate.hsm.base import KeyType

SUPPORTED_FORMATS = ("ETH", "BTC")
KNOWN_FORMATS = ("BTC", "ETH", "XLM", "XRP", "IOTA")


def check_format(address_format: str, key_type: KeyType, curve_oid: str | None) -> str:
    """The normalised format name; TSB errors for unknown (600), unsupported (605) formats and
    keys that are not secp256k1 (613)."""
    name = address_format.upper()
    if name not in KNOWN_FORMATS:
        raise errors.ValidationFailed(f"Value '{address_format}' is not valid for field 'addressFormat.format'")
    if name not in SUPPORTED_FORMATS:
        raise errors.TsbError(f"'addressFormat.format' {name} is not supported by hsmgate (ETH, BTC)", code=605)
    if key_type is not KeyType.EC or curve_oid != SECP256K1_OID:
        raise errors.InvalidKeyType(f"'addressFormat.format' {name} needs an EC key on secp256k1 (1.3.132.0.10)")
    return name


def address(address_format: str, public_key_der: bytes) -> bytes:
    """The 20-byte address hash of a secp256k1 public key (DER SubjectPublicKeyInfo)."""
    public = serialization.load_der_public_key(public_key_der)
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise errors.InvalidKeyType("addresses need an EC public key")
    if address_format == "ETH":
        point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return keccak.new(digest_bits=256, data=point[1:]).digest()[-20:]
    if address_format == "BTC":
        point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        return RIPEMD160.new(hashlib.sha256(point).digest()).digest()
    raise errors.TsbError(f"address format {address_format} is not supported", code=605)


def address_text(address_format: str, public_key_der: bytes) -> str:
    """The human-readable address of a secp256k1 public key: bech32 P2WPKH on Bitcoin mainnet
    (``bc``) for ``BTC``, EIP-55 for ``ETH`` (module text)."""
    public = serialization.load_der_public_key(public_key_der)
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise errors.InvalidKeyType("addresses need an EC public key")
    if address_format == "ETH":
        point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return str(EthAddrEncoder.EncodeKey(point))
    if address_format == "BTC":
        point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        return str(P2WPKHAddrEncoder.EncodeKey(point, hrp="bc", wit_ver=0))
    raise errors.TsbError(f"address format {address_format} is not supported", code=605)
