"""Sign and verify DTOs (reference §5.1–5.3)."""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field

from hsmgate.api.wire.common import Base64Bytes, Password, WireModel
from hsmgate.domain.algorithms import SIGNATURE_ALGORITHM_NAMES

SignatureAlgorithmName = enum.StrEnum(  # type: ignore[misc]
    "SignatureAlgorithm", {name.replace("-", "_"): name for name in SIGNATURE_ALGORITHM_NAMES}
)


class SignatureTypeName(enum.StrEnum):
    DER = "DER"
    RAW = "RAW"
    ETH = "ETH"


class PayloadType(enum.StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    ISO_20022 = "ISO_20022"
    PDF = "PDF"
    BTC = "BTC"
    ETH = "ETH"
    HEX = "HEX"


#: A key name: a label (at most 256 characters) or ``<master>/<derivation path>``.
SignKeyName = Field(min_length=1, max_length=640)
AuxiliaryRandomData = Field(None, description="NONE_WITH_EC_SCHNORR_BIP0340: 32 bytes of BIP-340 aux_rand "
                                              "(absent: fresh random bytes)")
TaprootTweakData = Field(None, description="NONE_WITH_EC_SCHNORR_BIP0340: the 32-byte BIP-341 tweak t itself "
                                           "(key-path spend); not with merkleRootData")
MerkleRootData = Field(None, description="NONE_WITH_EC_SCHNORR_BIP0340: the script tree root (32 bytes) or empty "
                                         "(BIP-86); hsmgate computes t = tagged_hash('TapTweak', x(P) ‖ root)")


class SynchronousSignRequestDto(WireModel):
    payload: Base64Bytes
    payloadType: PayloadType = PayloadType.UNSPECIFIED
    signKeyName: str = SignKeyName
    keyPassword: Password = None
    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None
    signatureAlgorithm: SignatureAlgorithmName  # type: ignore[valid-type]
    signatureType: SignatureTypeName | None = None
    context: Base64Bytes | None = Field(None, description="ML-DSA / SLH-DSA context string (at most 255 bytes)")
    auxiliaryRandomData: Base64Bytes | None = AuxiliaryRandomData
    taprootTweakData: Base64Bytes | None = TaprootTweakData
    merkleRootData: Base64Bytes | None = MerkleRootData
    signedApprovals: list[Base64Bytes] | None = None


class SignatureDto(WireModel):
    signature: Base64Bytes | None = None
    digestAlgorithm: str | None = None
    publicKey: Base64Bytes | None = None


class SignedSynchronousSignRequestDto(WireModel):
    signRequest: SynchronousSignRequestDto
    requestSignature: SignatureDto | None = None


class SignatureResponseDto(BaseModel):
    signature: str


class VerifySignatureRequestDto(WireModel):
    signKeyName: str = SignKeyName
    masterKeyPassword: Password = None
    signatureAlgorithm: SignatureAlgorithmName  # type: ignore[valid-type]
    payload: Base64Bytes
    signature: Base64Bytes
    context: Base64Bytes | None = Field(
        None, description="hsmgate extension: the ML-DSA / SLH-DSA context string the signature was made with")


class SignedVerifySignatureRequestDto(WireModel):
    verifySignatureRequest: VerifySignatureRequestDto
    requestSignature: SignatureDto | None = None


class VerifySignatureResponseDto(BaseModel):
    signatureValid: bool
