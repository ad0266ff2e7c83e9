"""Key DTOs: ``CreateKeyDto``, ``SignedKeyAttributesDto`` and friends (reference §4)."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hsmgate.api.wire.common import Password, WireModel
from hsmgate.domain.algorithms import KEY_ALGORITHMS, UNSUPPORTED_KEY_ALGORITHMS

KeyAlgorithmName = enum.StrEnum(  # type: ignore[misc]
    "KeyAlgorithm", {name.replace("-", "_"): name for name in (*KEY_ALGORITHMS, *sorted(UNSUPPORTED_KEY_ALGORITHMS))}
)


class KeyUseAttributes(WireModel):
    """The ``AttributesDto`` fields of a new key: decrypt, sign and unwrap are required
    (``POST /v1/derivedKey`` takes exactly these)."""

    encrypt: bool | None = None
    decrypt: bool
    verify: bool | None = None
    sign: bool
    wrap: bool | None = None
    unwrap: bool
    derive: bool = False
    extractable: bool = False
    modifiable: bool = True
    destroyable: bool = False
    sensitive: bool | None = None
    copyable: bool = False


class CreateKeyAttributes(KeyUseAttributes):
    """``AttributesDto`` of ``POST /v1/key``: also whether the key is a derivation master."""

    bip32: bool = False
    slip10: bool = False


class AddressFormat(WireModel):
    format: str


class CreateKeyDto(WireModel):
    """Body of ``POST /v1/key``."""

    label: str = Field(min_length=1, max_length=256)
    password: Password = None
    id: str | None = None
    algorithm: KeyAlgorithmName | None = Field(None, examples=["RSA", "EC", "ED", "AES"])  # type: ignore[valid-type]
    algorithmOid: str | None = None
    curveOid: str | None = Field(None, examples=["1.2.840.10045.3.1.7"])
    keySize: int | None = Field(None, examples=[2048])
    addressFormat: AddressFormat | None = None
    attributes: CreateKeyAttributes
    policy: dict[str, Any] | None = None


class KeyLabelWithPasswordDto(WireModel):
    """``{label, password}`` of ``POST /v1/key/attributes`` and ``POST /v1/key/deleteKey``."""

    label: str = Field(min_length=1, max_length=256)
    password: Password = None


class KeyCapabilitiesDto(BaseModel):
    """hsmgate's own (no TSB answer has it): the ``signatureAlgorithm``, ``cipherAlgorithm`` and
    ``wrapMethod`` values the key's token can execute for a key of its type, and whether it can
    compute an HMAC or decapsulate with it (docs/pkcs11.md)."""

    label: str
    backend: str
    signatureAlgorithms: list[str]
    cipherAlgorithms: list[str]
    wrapMethods: list[str]
    hmac: bool
    decapsulate: bool


class KeyAttributesOut(BaseModel):
    decrypt: bool
    sign: bool
    ekaSign: bool | None = None
    unwrap: bool
    derive: bool
    sensitive: bool
    alwaysSensitive: bool
    extractable: bool
    neverExtractable: bool
    modifiable: bool
    copyable: bool
    destroyable: bool


class KeyJson(BaseModel):
    """``json`` of ``SignedKeyAttributesDto``."""

    label: str
    id: str | None = None
    uuid: str | None = None
    algorithm: str
    algorithmOid: str
    curveOid: str | None = None
    derivedAttributes: dict[str, Any] | None = None
    #: hsmgate extension: the BIP-32 xpub of a secp256k1 derivation master or derived key
    extendedPublicKey: str | None = None
    #: hsmgate extension, stateful (LMS) keys: signatures left and in all (one per one-time key)
    remainingSignatures: int | None = None
    maxSignatures: int | None = None
    keySize: int | None = None
    createTime: str
    attestTime: str
    publicKey: str | None = None
    addressTruncated: dict[str, Any] | None = None
    attributes: KeyAttributesOut
    policy: dict[str, Any] | None = None


class SignedKeyAttributesDto(BaseModel):
    """A key with its attestation document and the attestation key's signature over it."""

    model_config = ConfigDict(populate_by_name=True)

    xml: str
    json_: KeyJson = Field(alias="json")
    xmlSignature: str
    attestationKeyName: str
