"""SKA DTOs: asynchronous requests, request status, approval tasks and approvals (reference §3.3,
§3.4, §6). Request DTOs ignore unknown fields; the task list is rendered by the route (fields
accumulate with the detail level, so lower levels must not carry the higher levels' nulls)."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, Field

from hsmgate.api.wire.certificates import (
    SelfSignCertificateRequestDto as SynchronousSelfSignCertificateRequestDto,
)
from hsmgate.api.wire.certificates import (
    SynchronousCertificateRequestRequestDto,
    SynchronousSignCertificateRequestDto,
)
from hsmgate.api.wire.common import Base64Bytes, Password, WireModel
from hsmgate.api.wire.keys import CreateKeyAttributes
from hsmgate.api.wire.operations import CipherAlgorithmName, WrapMethodName
from hsmgate.api.wire.signing import (
    AuxiliaryRandomData,
    MerkleRootData,
    PayloadType,
    SignatureAlgorithmName,
    SignatureDto,
    SignatureTypeName,
    SignKeyName,
    TaprootTweakData,
)
from hsmgate.domain.ska.approvals import SortOrder
from hsmgate.domain.ska.requests import WIRE_STATUSES

KeyName = Field(min_length=1, max_length=256)

# -- asynchronous requests (§3.3) ------------------------------------------------------------------


class SignRequestDto(WireModel):
    """``SignRequestDto`` of ``POST /v1/sign``."""

    payload: Base64Bytes
    payloadType: PayloadType = PayloadType.UNSPECIFIED
    signKeyName: str = SignKeyName
    keyPassword: Password = None
    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None
    signatureAlgorithm: SignatureAlgorithmName  # type: ignore[valid-type]
    signatureType: SignatureTypeName | None = None
    context: Base64Bytes | None = None
    auxiliaryRandomData: Base64Bytes | None = AuxiliaryRandomData
    taprootTweakData: Base64Bytes | None = TaprootTweakData
    merkleRootData: Base64Bytes | None = MerkleRootData


class SignedSignRequestDto(WireModel):
    signRequest: SignRequestDto
    requestSignature: SignatureDto | None = None


class DecryptRequestDto(WireModel):
    """``DecryptRequestDto`` of ``POST /v1/decrypt``."""

    encryptedPayload: Base64Bytes
    decryptKeyName: str = KeyName
    keyPassword: Password = None
    cipherAlgorithm: CipherAlgorithmName  # type: ignore[valid-type]
    initializationVector: Base64Bytes | None = None
    additionalAuthenticationData: Base64Bytes | None = None
    tagLength: int | None = 0
    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None


class SignedDecryptRequestDto(WireModel):
    decryptRequest: DecryptRequestDto
    requestSignature: SignatureDto | None = None


class UnwrapKeyRequestDto(WireModel):
    """``UnwrapKeyRequestDto`` of ``POST /v1/unwrap``."""

    wrappedKey: Base64Bytes
    label: str = KeyName
    attributes: CreateKeyAttributes
    unwrapKeyName: str = KeyName
    unwrapKeyPassword: Password = None
    wrapMethod: WrapMethodName  # type: ignore[valid-type]
    policy: dict[str, Any] | None = None
    algorithm: str | None = None
    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None


class SignedUnwrapKeyRequestDto(WireModel):
    unwrapKeyRequest: UnwrapKeyRequestDto
    requestSignature: SignatureDto | None = None


class BlockKeyRequestDto(WireModel):
    blockKeyName: str = KeyName
    keyPassword: Password = None
    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None


class SignedBlockKeyRequestDto(WireModel):
    blockRequest: BlockKeyRequestDto
    requestSignature: SignatureDto | None = None


class UnblockKeyRequestDto(WireModel):
    unblockKeyName: str = KeyName
    keyPassword: Password = None
    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None


class SignedUnblockKeyRequestDto(WireModel):
    unblockRequest: UnblockKeyRequestDto
    requestSignature: SignatureDto | None = None


class ModifyKeyRequestDto(WireModel):
    """``ModifyKeyRequestDto``: ``policy`` is a ModifyPolicyDto (the four rules, no keyStatus)."""

    modifyKeyName: str = KeyName
    keyPassword: Password = None
    policy: dict[str, Any]
    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None


class SignedModifyKeyRequestDto(WireModel):
    modifyRequest: ModifyKeyRequestDto
    requestSignature: SignatureDto | None = None


class CsrSignRequestDto(SynchronousCertificateRequestRequestDto):
    """``CsrSignRequestDto`` of ``POST /v1/certificate/request``."""

    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None


class SignedCsrSignRequestDto(WireModel):
    csrSignRequest: CsrSignRequestDto
    requestSignature: SignatureDto | None = None


class SignCertificateRequestDto(SynchronousSignCertificateRequestDto):
    """``SignCertificateRequestDto`` of ``POST /v1/certificate/sign``."""

    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None


class SignedSignCertificateRequestDto(WireModel):
    signCertificateRequest: SignCertificateRequestDto
    requestSignature: SignatureDto | None = None


class SelfSignCertificateRequestDto(SynchronousSelfSignCertificateRequestDto):
    """``SelfSignCertificateRequestDto`` of ``POST /v1/certificate/selfsign``."""

    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None


class SignedSelfSignCertificateRequestDto(WireModel):
    selfSignCertificateRequest: SelfSignCertificateRequestDto
    requestSignature: SignatureDto | None = None


class DecapsulateRequestDto(WireModel):
    """``DecapsulateRequestDto`` of ``POST /v1/decapsulate`` (wave-2 reference §4.3)."""

    decapsulationKeyName: str = KeyName
    keyPassword: Password = None
    ciphertext: Base64Bytes = Field(description="The ML-KEM ciphertext (the encapsulated key)")
    metaData: Base64Bytes | None = None
    metaDataSignature: Base64Bytes | None = None


class SignedDecapsulationRequestDto(WireModel):
    decapsulationRequest: DecapsulateRequestDto
    requestSignature: SignatureDto | None = None


class SignRequestIdDto(BaseModel):
    signRequestId: str


class DecryptRequestIdDto(BaseModel):
    decryptRequestId: str


class UnwrapRequestIdDto(BaseModel):
    unwrapRequestId: str


class BlockKeyRequestIdDto(BaseModel):
    blockKeyRequestId: str


class UnblockKeyRequestIdDto(BaseModel):
    unblockKeyRequestId: str


class DecapsulationRequestIdDto(BaseModel):
    decapsulationRequestId: str


class ModifyKeyRequestIdDto(BaseModel):
    modifyKeyRequestId: str


# -- synchronous block / unblock / modify (§3.2, §6.8) -------------------------------------------------


class SynchronousBlockKeyRequestDto(WireModel):
    blockKeyName: str = KeyName
    keyPassword: Password = None
    signedApprovals: list[Base64Bytes] | None = None


class SignedSynchronousBlockKeyRequestDto(WireModel):
    blockRequest: SynchronousBlockKeyRequestDto
    requestSignature: SignatureDto | None = None


class SynchronousUnblockKeyRequestDto(WireModel):
    unblockKeyName: str = KeyName
    keyPassword: Password = None
    signedApprovals: list[Base64Bytes] | None = None


class SignedSynchronousUnblockKeyRequestDto(WireModel):
    unblockRequest: SynchronousUnblockKeyRequestDto
    requestSignature: SignatureDto | None = None


class SynchronousModifyKeyRequestDto(WireModel):
    modifyKeyName: str = KeyName
    keyPassword: Password = None
    policy: dict[str, Any]
    signedApprovals: list[Base64Bytes] | None = None


class SignedSynchronousModifyKeyRequestDto(WireModel):
    modifyRequest: SynchronousModifyKeyRequestDto
    requestSignature: SignatureDto | None = None


# -- request status (§6.2) -----------------------------------------------------------------------------

RequestStatusName = enum.StrEnum("RequestStatus", {name: name for name in WIRE_STATUSES})  # type: ignore[misc]


class RequestStatusDto(BaseModel):
    id: str
    status: RequestStatusName  # type: ignore[valid-type]
    executionTime: str | None = Field(None, examples=["2020-06-24T08:54:47Z"])
    approvedBy: list[str] = Field(description="b64 DER SubjectPublicKeyInfo of the approvers that approved")
    notYetApprovedBy: list[str]
    rejectedBy: list[str]
    result: str | None = Field(None, description="sign: b64 signature; block/unblock/modify: \"true\"")


class FilteredRequestsDto(WireModel):
    requestStatusList: list[RequestStatusName] | None = None  # type: ignore[valid-type]


class RequestsResponseDto(BaseModel):
    requests: list[RequestStatusDto]


# -- approval tasks (§3.4, §6.3, §6.4) ------------------------------------------------------------------


class DetailLevel(enum.StrEnum):
    level1 = "level1"
    level2 = "level2"
    level3 = "level3"
    level4 = "level4"
    level5 = "level5"
    level6 = "level6"


SortOrderName = enum.StrEnum("SortOrder", {order.value: order.value for order in SortOrder})  # type: ignore[misc]


class PagingDto(WireModel):
    pageNumber: int = Field(0, ge=0)
    pageSize: int = Field(ge=1, le=10_000)
    sortOrder: SortOrderName = SortOrderName.CREATION_DATE_ASC  # type: ignore[valid-type, attr-defined]


class AuthenticatableRequestDto(WireModel):
    """The approver's proof of possession: a fresh timestamp signed with the approver's key (or
    with a whitelisted timestamp signer's)."""

    timestamp: str = Field(examples=["2024-12-01T10:00:00.123Z"])
    timestampSignature: Base64Bytes
    timestampDigestAlgorithm: str | None = Field(None, examples=["SHA-256", "EdDSA"])
    approverPublicKey: Base64Bytes | None = None
    approverCertificate: Base64Bytes | None = None
    timestampSigningCertificate: Base64Bytes | None = None


class FilteredTasksRequestDto(AuthenticatableRequestDto):
    id: str | None = None
    requestId: str | None = None
    detailLevel: DetailLevel = DetailLevel.level1
    paging: PagingDto | None = None


class DeleteTaskRequestDto(AuthenticatableRequestDto):
    id: str


class SendApprovalDto(WireModel):
    id: str
    approvalToBeSigned: Base64Bytes
    signature: Base64Bytes
    approvalDigestAlgorithm: str | None = Field(None, examples=["SHA-256", "EdDSA"])
    approverPublicKey: Base64Bytes | None = None
    approverCertificate: Base64Bytes | None = None


class TaskDto(BaseModel):
    """One task; the fields present depend on ``detailLevel`` (level1 ⊂ level2 ⊂ … ⊂ level6)."""

    detailLevel: DetailLevel
    id: str
    approvalToBeSigned: str
    approverPublicKey: str
    metaData: str | None = None
    metaDataSignature: str | None = None
    payload: str | None = None
    payloadType: str | None = None
    requestBase64: str | None = None
    signedSignRequest: dict[str, Any] | None = None
    signedModifyKeyRequest: dict[str, Any] | None = None
    signedBlockKeyRequest: dict[str, Any] | None = None
    signedUnblockKeyRequest: dict[str, Any] | None = None
    signedDecryptRequest: dict[str, Any] | None = None
    signedUnwrapKeyRequest: dict[str, Any] | None = None
    signedCertificateRequestRequest: dict[str, Any] | None = None
    signedSignCertificateRequest: dict[str, Any] | None = None
    signedSelfSignCertificateRequestDto: dict[str, Any] | None = None
    signedDecapsulationRequest: dict[str, Any] | None = None
    timestamp: str | None = None
    timestampSignature: str | None = None
    timestampSignatureAlgorithm: str | None = None
    timestampSignatureWithAlgorithm: str | None = None
    keyAttributes: str | None = None
    keyAttributesSignature: str | None = None
    requestStatus: RequestStatusDto | None = None


class GetTasksResponseDto(BaseModel):
    tasks: list[TaskDto]
