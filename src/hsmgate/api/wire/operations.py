"""Encrypt, decrypt, wrap, unwrap, HMAC and RFC 3161 DTOs (reference §3.2, §5.4–§5.6)."""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field

from hsmgate.api.wire.common import Base64Bytes, Password, WireModel
from hsmgate.api.wire.keys import CreateKeyAttributes
from hsmgate.api.wire.signing import SignatureDto, VerifySignatureRequestDto
from hsmgate.domain.algorithms import CIPHER_ALGORITHMS, WRAP_METHOD_NAMES

CipherAlgorithmName = enum.StrEnum("CipherAlgorithm", {name: name for name in CIPHER_ALGORITHMS})  # type: ignore[misc]
WrapMethodName = enum.StrEnum(  # type: ignore[misc]
    "WrapMethod", {name.replace("-", "_"): name for name in WRAP_METHOD_NAMES}
)
KeyName = Field(min_length=1, max_length=256)
TAG_LENGTH_DOC = "AEAD tag length in bits: 0 (= 128), 64, 96, 104, 112, 120, 128; AES_GCM (and CHACHA20_AEAD: 128)"


# -- encrypt / decrypt ------------------------------------------------------------------------


class EncryptRequestDto(WireModel):
    payload: Base64Bytes
    encryptKeyName: str = KeyName
    keyPassword: Password = None
    cipherAlgorithm: CipherAlgorithmName  # type: ignore[valid-type]
    additionalAuthenticationData: Base64Bytes | None = None
    tagLength: int | None = Field(0, description=TAG_LENGTH_DOC)


class SignedEncryptRequestDto(WireModel):
    encryptRequest: EncryptRequestDto
    requestSignature: SignatureDto | None = None


class EncryptRequestResponseDto(BaseModel):
    """``encryptedPayload`` is ciphertext‖tag for AEAD ciphers; RSA fills only ``encryptedPayload``."""

    encryptedPayload: str
    encryptedPayloadWithoutMessageAuthenticationCode: str | None = None
    initializationVector: str | None = None
    messageAuthenticationCode: str | None = None


class SynchronousDecryptRequestDto(WireModel):
    encryptedPayload: Base64Bytes
    decryptKeyName: str = KeyName
    keyPassword: Password = None
    cipherAlgorithm: CipherAlgorithmName  # type: ignore[valid-type]
    initializationVector: Base64Bytes | None = None
    additionalAuthenticationData: Base64Bytes | None = None
    signedApprovals: list[Base64Bytes] | None = None
    tagLength: int | None = Field(0, description=TAG_LENGTH_DOC)


class SignedSynchronousDecryptRequestDto(WireModel):
    decryptRequest: SynchronousDecryptRequestDto
    requestSignature: SignatureDto | None = None


class DecryptResponseDto(BaseModel):
    payload: str


# -- wrap / unwrap ----------------------------------------------------------------------------


class WrapKeyRequestDto(WireModel):
    keyToBeWrapped: str = KeyName
    keyToBeWrappedPassword: Password = None
    wrapKeyName: str = KeyName
    wrapKeyPassword: Password = None
    wrapMethod: WrapMethodName  # type: ignore[valid-type]


class SignedWrapKeyRequestDto(WireModel):
    wrapKeyRequest: WrapKeyRequestDto
    requestSignature: SignatureDto | None = None


class WrapKeyResponseDto(BaseModel):
    wrappedKey: str


class SynchronousUnwrapKeyRequestDto(WireModel):
    wrappedKey: Base64Bytes
    label: str = KeyName
    attributes: CreateKeyAttributes
    unwrapKeyName: str = KeyName
    unwrapKeyPassword: Password = None
    wrapMethod: WrapMethodName  # type: ignore[valid-type]
    signedApprovals: list[Base64Bytes] | None = None
    policy: dict | None = None  # type: ignore[type-arg]
    algorithm: str | None = Field(
        None, max_length=64, examples=["ChaCha20"],
        description="hsmgate extension: the algorithm of a wrapped secret key (default: the one recorded "
                    "when this deployment wrapped the blob, else AES); private keys carry theirs")


class SignedSynchronousUnwrapKeyRequestDto(WireModel):
    unwrapKeyRequest: SynchronousUnwrapKeyRequestDto
    requestSignature: SignatureDto | None = None


# -- HMAC -------------------------------------------------------------------------------------


class HmacRequestDto(WireModel):
    keyName: str = KeyName
    payload: Base64Bytes
    keyPassword: Password = None


class SignedHmacRequestDto(WireModel):
    hmacRequest: HmacRequestDto
    requestSignature: SignatureDto | None = None


class HmacResponseDto(BaseModel):
    keyedHash: str


class VerifyHmacRequestDto(WireModel):
    keyName: str = KeyName
    payload: Base64Bytes
    signature: Base64Bytes
    keyPassword: Password = None


class SignedVerifyHmacRequestDto(WireModel):
    verifyHmacRequest: VerifyHmacRequestDto
    requestSignature: SignatureDto | None = None


class SignedVerifyRequestDto(WireModel):
    """Body of ``/v1/verify``: a signature (``verifySignatureRequest``) or, as the DOCS show it, an
    HMAC (``verifyHmacRequest``) — exactly one of them."""

    verifySignatureRequest: VerifySignatureRequestDto | None = None
    verifyHmacRequest: VerifyHmacRequestDto | None = None
    requestSignature: SignatureDto | None = None


# -- RFC 3161 ---------------------------------------------------------------------------------


class CreateRfcTimestampDto(WireModel):
    payload: Base64Bytes = Field(description="The data to timestamp; hsmgate hashes it with hashAlgorithm")
    hashAlgorithm: str = Field(min_length=1, max_length=16, examples=["SHA256"],
                               description="SHA1, SHA224, SHA256, SHA384 or SHA512")


class RfcTimestampResponseDto(BaseModel):
    timestamp: str = Field(description="base64 DER TimeStampToken (CMS ContentInfo, RFC 3161 §2.4.2)")
