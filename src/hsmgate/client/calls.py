"""What each client call sends and how its answer is read, shared by :class:`HsmgateClient` and
:class:`AsyncHsmgateClient` (which only do the I/O). Bodies are the server's own wire models
(``hsmgate.api.wire``), so the client sends exactly what the server validates."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from hsmgate.api.wire.approvers import ApproverOnboardDto, ApproverOnboardResponseDto
from hsmgate.api.wire.batch import (
    SynchronousSignBatchRequestDto,
    SynchronousSignBatchResponseDto,
    VerifyBatchRequestDto,
    VerifyBatchResponseDto,
)
from hsmgate.api.wire.common import ErrorBody
from hsmgate.api.wire.keys import (
    CreateKeyAttributes,
    CreateKeyDto,
    KeyLabelWithPasswordDto,
    SignedKeyAttributesDto,
)
from hsmgate.api.wire.operations import (
    DecryptResponseDto,
    EncryptRequestDto,
    EncryptRequestResponseDto,
    SignedEncryptRequestDto,
    SignedSynchronousDecryptRequestDto,
    SignedVerifyRequestDto,
    SynchronousDecryptRequestDto,
)
from hsmgate.api.wire.signing import (
    SignatureResponseDto,
    SignedSynchronousSignRequestDto,
    SynchronousSignRequestDto,
    VerifySignatureRequestDto,
    VerifySignatureResponseDto,
)
from hsmgate.api.wire.ska import (
    DeleteTaskRequestDto,
    FilteredRequestsDto,
    FilteredTasksRequestDto,
    GetTasksResponseDto,
    RequestsResponseDto,
    RequestStatusDto,
    SendApprovalDto,
    TaskDto,
)
from hsmgate.client.errors import TsbApiError

T = TypeVar("T")

#: Attributes of a key made by :meth:`create_key` without ``attributes``: a signing key that can
#: be deleted, never extracted.
SIGNING_KEY = CreateKeyAttributes(sign=True, decrypt=False, unwrap=False, destroyable=True)


@dataclass(frozen=True, slots=True)
class SignItem:
    """One signature of a batch (:meth:`sign_batch`)."""

    label: str
    payload: bytes
    algorithm: str
    signature_type: str | None = None
    password: str | None = None
    context: bytes | None = None


@dataclass(frozen=True, slots=True)
class VerifyItem:
    """One verification of a batch (:meth:`verify_batch`)."""

    label: str
    payload: bytes
    signature: bytes
    algorithm: str
    password: str | None = None
    context: bytes | None = None


@dataclass(frozen=True, slots=True)
class Encrypted:
    """What :meth:`encrypt` returns: ``ciphertext`` (with the tag appended for AEAD ciphers), the
    ``iv`` the backend chose (decryption needs it) and, for AEAD ciphers, the tag alone."""

    ciphertext: bytes
    iv: bytes | None = None
    mac: bytes | None = None


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """An HTTP request and the reader of its answer (called only for an expected status)."""

    method: str
    path: str
    body: BaseModel | None
    read: Callable[[httpx.Response], T]
    expect: int = 200

    def request_json(self) -> dict[str, Any] | None:
        return None if self.body is None else self.body.model_dump(mode="json", by_alias=True, exclude_none=True)

    def answer(self, response: httpx.Response) -> T:
        if response.status_code != self.expect:
            raise TsbApiError.from_response(response)
        return self.read(response)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _model(model: type[T]) -> Callable[[httpx.Response], T]:
    return lambda response: model.model_validate(response.json())  # type: ignore[attr-defined, no-any-return]


def _nothing(response: httpx.Response) -> None:
    return None


# -- keys ------------------------------------------------------------------------------------------


def create_key(label: str, algorithm: str, *, key_size: int | None, curve_oid: str | None,
               attributes: CreateKeyAttributes | None, password: str | None,
               policy: dict[str, Any] | None) -> Call[SignedKeyAttributesDto]:
    body = CreateKeyDto.model_validate({
        "label": label, "algorithm": algorithm, "keySize": key_size, "curveOid": curve_oid, "password": password,
        "attributes": (attributes or SIGNING_KEY).model_dump(), "policy": policy})
    return Call("POST", "/v1/key", body, _model(SignedKeyAttributesDto), expect=201)


def list_keys() -> Call[list[str]]:
    return Call("GET", "/v1/key", None, lambda response: [str(label) for label in response.json()])


def describe_key(label: str, *, password: str | None) -> Call[SignedKeyAttributesDto]:
    body = KeyLabelWithPasswordDto(label=label, password=password)
    return Call("POST", "/v1/key/attributes", body, _model(SignedKeyAttributesDto))


def delete_key(label: str, *, password: str | None) -> Call[None]:
    return Call("POST", "/v1/key/deleteKey", KeyLabelWithPasswordDto(label=label, password=password), _nothing)


# -- sign and verify -------------------------------------------------------------------------------


def _sign_request(item: SignItem) -> SynchronousSignRequestDto:
    return SynchronousSignRequestDto.model_validate({
        "payload": b64(item.payload), "signKeyName": item.label, "signatureAlgorithm": item.algorithm,
        "signatureType": item.signature_type, "keyPassword": item.password,
        "context": b64(item.context) if item.context is not None else None})


def _verify_request(item: VerifyItem) -> VerifySignatureRequestDto:
    return VerifySignatureRequestDto.model_validate({
        "signKeyName": item.label, "signatureAlgorithm": item.algorithm, "payload": b64(item.payload),
        "signature": b64(item.signature), "masterKeyPassword": item.password,
        "context": b64(item.context) if item.context is not None else None})


def sign(item: SignItem) -> Call[bytes]:
    body = SignedSynchronousSignRequestDto(signRequest=_sign_request(item))
    return Call("POST", "/v1/synchronousSign", body,
                lambda response: base64.b64decode(SignatureResponseDto.model_validate(response.json()).signature))


def sign_batch(items: Sequence[SignItem]) -> Call[list[bytes | TsbApiError]]:
    body = SynchronousSignBatchRequestDto(signRequests=[_sign_request(item) for item in items])

    def read(response: httpx.Response) -> list[bytes | TsbApiError]:
        answer = SynchronousSignBatchResponseDto.model_validate(response.json())
        return [TsbApiError.from_body(response.status_code, result.model_dump()) if isinstance(result, ErrorBody)
                else base64.b64decode(result.signature) for result in answer.results]

    return Call("POST", "/v1/synchronousSignBatch", body, read)


def verify(item: VerifyItem) -> Call[bool]:
    body = SignedVerifyRequestDto(verifySignatureRequest=_verify_request(item))
    return Call("POST", "/v1/verify", body,
                lambda response: VerifySignatureResponseDto.model_validate(response.json()).signatureValid)


def verify_batch(items: Sequence[VerifyItem]) -> Call[list[bool | TsbApiError]]:
    body = VerifyBatchRequestDto(verifyRequests=[_verify_request(item) for item in items])

    def read(response: httpx.Response) -> list[bool | TsbApiError]:
        answer = VerifyBatchResponseDto.model_validate(response.json())
        return [TsbApiError.from_body(response.status_code, result.model_dump()) if isinstance(result, ErrorBody)
                else result.signatureValid for result in answer.results]

    return Call("POST", "/v1/verifyBatch", body, read)


# -- encrypt and decrypt ---------------------------------------------------------------------------


def encrypt(label: str, payload: bytes, algorithm: str, *, aad: bytes | None, tag_length: int | None,
            password: str | None) -> Call[Encrypted]:
    body = SignedEncryptRequestDto(encryptRequest=EncryptRequestDto.model_validate({
        "payload": b64(payload), "encryptKeyName": label, "cipherAlgorithm": algorithm, "keyPassword": password,
        "additionalAuthenticationData": b64(aad) if aad is not None else None, "tagLength": tag_length}))

    def read(response: httpx.Response) -> Encrypted:
        answer = EncryptRequestResponseDto.model_validate(response.json())
        return Encrypted(base64.b64decode(answer.encryptedPayload), unb64(answer.initializationVector),
                         unb64(answer.messageAuthenticationCode))

    return Call("POST", "/v1/encrypt", body, read)


def decrypt(label: str, ciphertext: bytes, algorithm: str, *, iv: bytes | None, aad: bytes | None,
            tag_length: int | None, password: str | None) -> Call[bytes]:
    body = SignedSynchronousDecryptRequestDto(decryptRequest=SynchronousDecryptRequestDto.model_validate({
        "encryptedPayload": b64(ciphertext), "decryptKeyName": label, "cipherAlgorithm": algorithm,
        "keyPassword": password, "initializationVector": b64(iv) if iv is not None else None,
        "additionalAuthenticationData": b64(aad) if aad is not None else None, "tagLength": tag_length}))
    return Call("POST", "/v1/synchronousDecrypt", body,
                lambda response: base64.b64decode(DecryptResponseDto.model_validate(response.json()).payload))


# -- SKA requests ----------------------------------------------------------------------------------


def get_request(request_id: str) -> Call[RequestStatusDto]:
    return Call("GET", f"/v1/request/{quote(request_id, safe='')}", None, _model(RequestStatusDto))


def list_requests(statuses: Sequence[str] | None) -> Call[list[RequestStatusDto]]:
    body = FilteredRequestsDto.model_validate({"requestStatusList": list(statuses) if statuses else None})
    return Call("POST", "/v1/filteredRequests", body,
                lambda response: RequestsResponseDto.model_validate(response.json()).requests)


# -- approvers (docs/approvers.md) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApproverProof:
    """An approver's proof of possession for a task call: ``timestamp`` (ISO-8601) and its
    signature with the approver's key, and the approver's DER certificate or SPKI."""

    timestamp: str
    signature: bytes
    digest_algorithm: str = "SHA-256"
    certificate: bytes | None = None
    public_key: bytes | None = None

    def fields(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "timestampSignature": b64(self.signature),
                "timestampDigestAlgorithm": self.digest_algorithm,
                "approverCertificate": b64(self.certificate) if self.certificate is not None else None,
                "approverPublicKey": b64(self.public_key) if self.public_key is not None else None}


def onboard_approver(name: str, one_time_code: str, transport_password: str) -> Call[ApproverOnboardResponseDto]:
    body = ApproverOnboardDto(approverName=name, oneTimeCode=one_time_code, transportPassword=transport_password)
    return Call("POST", "/v1/approver/onboard", body, _model(ApproverOnboardResponseDto))


def approval_tasks(proof: ApproverProof, *, task_id: str | None, request_id: str | None,
                   detail_level: str) -> Call[list[TaskDto]]:
    body = FilteredTasksRequestDto.model_validate({**proof.fields(), "id": task_id, "requestId": request_id,
                                                   "detailLevel": detail_level})
    return Call("POST", "/v1/filteredAllApprovalTask", body,
                lambda response: GetTasksResponseDto.model_validate(response.json()).tasks)


def approve_task(task_id: str, token: bytes, signature: bytes, *, certificate: bytes | None,
                 public_key: bytes | None, digest_algorithm: str = "SHA-256") -> Call[None]:
    body = SendApprovalDto.model_validate({
        "id": task_id, "approvalToBeSigned": b64(token), "signature": b64(signature),
        "approvalDigestAlgorithm": digest_algorithm,
        "approverCertificate": b64(certificate) if certificate is not None else None,
        "approverPublicKey": b64(public_key) if public_key is not None else None})
    return Call("POST", "/v1/approval", body, _nothing)


def reject_task(task_id: str, proof: ApproverProof) -> Call[None]:
    body = DeleteTaskRequestDto.model_validate({**proof.fields(), "id": task_id})
    return Call("DELETE", "/v1/task", body, _nothing)
