"""ML-KEM DTOs. Shapes follow the TSB's own Go client (``tsb-client-go`` 2026, ``encapsulate.go``):
``POST /v1/encapsulate {"publicKey"}`` and ``POST /v1/synchronousDecapsulate
{"decapsulationRequest": {"decapsulationKeyName", "ciphertext", "keyPassword"}}``."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hsmgate.api.wire.common import Base64Bytes, Password, WireModel
from hsmgate.api.wire.signing import SignatureDto


class EncapsulateRequestDto(WireModel):
    """Flat body, as the TSB client sends it. ``keyName`` is an hsmgate extension."""

    publicKey: Base64Bytes | None = Field(None, description="ML-KEM public key: base64 DER SubjectPublicKeyInfo")
    keyName: str | None = Field(None, min_length=1, max_length=256,
                                description="hsmgate extension: encapsulate to this ML-KEM key of the partition "
                                            "instead of a publicKey")
    keyPassword: Password = Field(None, description="hsmgate extension: password of the key named by keyName")


class EncapsulateResponseDto(BaseModel):
    ciphertext: str = Field(description="base64 ML-KEM ciphertext (768 / 1088 / 1568 bytes)")
    sharedSecret: str = Field(description="base64 32-byte shared secret")


class DecapsulationRequestDto(WireModel):
    decapsulationKeyName: str = Field(min_length=1, max_length=256)
    ciphertext: Base64Bytes
    keyPassword: Password = None
    signedApprovals: list[Base64Bytes] | None = None


class SynchronousDecapsulateRequestDto(WireModel):
    decapsulationRequest: DecapsulationRequestDto
    requestSignature: SignatureDto | None = None


class DecapsulateResponseDto(BaseModel):
    sharedSecret: str = Field(description="base64 32-byte shared secret")
