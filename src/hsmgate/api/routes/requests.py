"""Tag "Requests": the asynchronous SKA operations and their status (reference §3.3, §6.2), and the
synchronous block / unblock / modify with ``signedApprovals`` (§3.2, §6.8).

Every asynchronous endpoint answers 201 with the request id field of §3.3. A key without policy, or
whose rule for the operation is always fulfilled, executes at once: the request is stored EXECUTED
(its result at ``GET /v1/request/{id}``) and an error is answered directly, as the synchronous
endpoint would. A key password (``keyPassword``) is checked when the request is made (620) and then
dropped: the stored request (and the approvers' ``requestBase64``) carries ``null``; hsmgate never
stores key passwords. Results are stored sealed and erased on ``DELETE`` of an EXECUTED request or
after HSMGATE_SKA_RESULT_RETENTION (``domain/ska/results.py``).
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import Depends, Path, Response, status

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.routes import empty, empty_response, tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES, WireModel
from hsmgate.api.wire.ska import (
    BlockKeyRequestIdDto,
    DecapsulationRequestIdDto,
    DecryptRequestIdDto,
    FilteredRequestsDto,
    ModifyKeyRequestIdDto,
    RequestsResponseDto,
    RequestStatusDto,
    SignedBlockKeyRequestDto,
    SignedCsrSignRequestDto,
    SignedDecapsulationRequestDto,
    SignedDecryptRequestDto,
    SignedModifyKeyRequestDto,
    SignedSelfSignCertificateRequestDto,
    SignedSignCertificateRequestDto,
    SignedSignRequestDto,
    SignedSynchronousBlockKeyRequestDto,
    SignedSynchronousModifyKeyRequestDto,
    SignedSynchronousUnblockKeyRequestDto,
    SignedUnblockKeyRequestDto,
    SignedUnwrapKeyRequestDto,
    SignRequestIdDto,
    UnblockKeyRequestIdDto,
    UnwrapRequestIdDto,
)
from hsmgate.domain.attestation import iso_z
from hsmgate.domain.gateway import PartitionServices
from hsmgate.domain.key_use import Caller, KeyRef
from hsmgate.domain.ska.approvals import SkaServices
from hsmgate.domain.ska.policy import Policy, binary_policy
from hsmgate.domain.ska.requests import KINDS, RequestKind, RequestView, Submission, block_payload

router = tsb_router(responses=ERROR_RESPONSES)
REQUESTS = ["Requests"]
SYNCHRONOUS = ["Synchronous Key Operations"]
RequestIdPath = Path(min_length=1, max_length=64, description="The request id (UUID)")


def ska_services(services: ServicesDep) -> SkaServices:
    return services.require_ska()


SkaDep = Annotated[SkaServices, Depends(ska_services)]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def status_dto(view: RequestView) -> RequestStatusDto:
    return RequestStatusDto(
        id=view.id, status=view.status.wire,
        executionTime=iso_z(view.executed_at) if view.executed_at is not None else None,
        approvedBy=[_b64(a) for a in view.approved_by], notYetApprovedBy=[_b64(a) for a in view.not_yet_approved_by],
        rejectedBy=[_b64(a) for a in view.rejected_by], result=view.result,
    )


def _envelope(body: WireModel) -> dict[str, Any]:
    """The envelope as the server re-serialises it (level-3 ``requestBase64``), nulls included."""
    return dict(body.model_dump(mode="json"))


def _submit(ska: SkaServices, services: PartitionServices, caller: Caller, kind: RequestKind, label: str,
            payload: bytes | None,
            body: WireModel, password_field: str = "keyPassword") -> str:
    """Check the key password now (620), store the request without it, submit (audited)."""
    spec = KINDS[kind]
    envelope = _envelope(body)
    inner = envelope[spec.envelope]
    services.key_use.check_password(caller, KeyRef(label, inner.get(password_field), f"{spec.envelope}.{password_field}"))
    inner[password_field] = None  # verified here; hsmgate never stores key passwords
    if payload is None:  # certificate requests (GAP decision): the inner request's JSON
        payload = json.dumps(inner, separators=(",", ":"), sort_keys=True).encode()
    return ska.requests.submit(Submission(kind, label, payload, envelope), services.key_use.audit(caller)).id


@router.post("/v1/sign", tags=REQUESTS, status_code=status.HTTP_201_CREATED, operation_id="sign",
             response_model=SignRequestIdDto, summary="Request a signature (approved by the key's policy)")
def sign(body: SignedSignRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> SignRequestIdDto:
    request = body.signRequest
    return SignRequestIdDto(signRequestId=_submit(ska, services, caller, RequestKind.SIGN, request.signKeyName,
                                                  request.payload, body))


@router.post("/v1/decrypt", tags=REQUESTS, status_code=status.HTTP_201_CREATED, operation_id="decrypt",
             response_model=DecryptRequestIdDto, summary="Request a decryption (approved by the key's policy)")
def decrypt(body: SignedDecryptRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> DecryptRequestIdDto:
    request = body.decryptRequest
    return DecryptRequestIdDto(decryptRequestId=_submit(
        ska, services, caller, RequestKind.DECRYPT, request.decryptKeyName, request.encryptedPayload, body))


@router.post("/v1/unwrap", tags=REQUESTS, status_code=status.HTTP_201_CREATED, operation_id="unwrap",
             response_model=UnwrapRequestIdDto, summary="Request an unwrap (approved by the key's policy)")
def unwrap(body: SignedUnwrapKeyRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> UnwrapRequestIdDto:
    request = body.unwrapKeyRequest
    return UnwrapRequestIdDto(unwrapRequestId=_submit(
        ska, services, caller, RequestKind.UNWRAP, request.unwrapKeyName, request.wrappedKey, body, "unwrapKeyPassword"))


@router.post("/v1/decapsulate", tags=REQUESTS, status_code=status.HTTP_201_CREATED, operation_id="decapsulate",
             response_model=DecapsulationRequestIdDto,
             summary="Request an ML-KEM decapsulation (approved by the key's policy); the shared secret is the "
                     "request's result")
def decapsulate(body: SignedDecapsulationRequestDto, ska: SkaDep, services: ServicesDep,
                caller: CallerDep) -> DecapsulationRequestIdDto:
    request = body.decapsulationRequest
    return DecapsulationRequestIdDto(decapsulationRequestId=_submit(
        ska, services, caller, RequestKind.DECAPSULATE, request.decapsulationKeyName, request.ciphertext, body))


@router.post("/v1/block", tags=REQUESTS, status_code=status.HTTP_201_CREATED, operation_id="block",
             response_model=BlockKeyRequestIdDto, summary="Request to block an SKA key")
def block(body: SignedBlockKeyRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> BlockKeyRequestIdDto:
    label = body.blockRequest.blockKeyName
    return BlockKeyRequestIdDto(blockKeyRequestId=_submit(
        ska, services, caller, RequestKind.BLOCK, label, block_payload(label), body))


@router.post("/v1/unblock", tags=REQUESTS, status_code=status.HTTP_201_CREATED, operation_id="unblock",
             response_model=UnblockKeyRequestIdDto, summary="Request to unblock an SKA key")
def unblock(body: SignedUnblockKeyRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> UnblockKeyRequestIdDto:
    label = body.unblockRequest.unblockKeyName
    return UnblockKeyRequestIdDto(unblockKeyRequestId=_submit(
        ska, services, caller, RequestKind.UNBLOCK, label, block_payload(label), body))


@router.post("/v1/modify", tags=REQUESTS, status_code=status.HTTP_201_CREATED, operation_id="modify",
             response_model=ModifyKeyRequestIdDto, summary="Request to replace the policy of an SKA key")
def modify(body: SignedModifyKeyRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> ModifyKeyRequestIdDto:
    request = body.modifyRequest
    policy = services.keys.resolved(Policy.from_wire(request.policy, field="modifyRequest.policy", key_status=False),
                                    field="modifyRequest.policy")
    return ModifyKeyRequestIdDto(modifyKeyRequestId=_submit(
        ska, services, caller, RequestKind.MODIFY, request.modifyKeyName, binary_policy(policy), body))


@router.post("/v1/certificate/request", tags=REQUESTS, status_code=status.HTTP_201_CREATED,
             operation_id="signCsrWithSkaKey", response_model=SignRequestIdDto,
             summary="Request a CSR signed by an SKA key")
def certificate_request(body: SignedCsrSignRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> SignRequestIdDto:
    return SignRequestIdDto(signRequestId=_submit(
        ska, services, caller, RequestKind.CERTIFICATE_REQUEST, body.csrSignRequest.signKeyName, None, body))


@router.post("/v1/certificate/sign", tags=REQUESTS, status_code=status.HTTP_201_CREATED,
             operation_id="signCertificateWithSkaKey", response_model=SignRequestIdDto,
             summary="Request a certificate issued by an SKA key")
def certificate_sign(body: SignedSignCertificateRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> SignRequestIdDto:
    return SignRequestIdDto(signRequestId=_submit(
        ska, services, caller, RequestKind.CERTIFICATE_SIGN, body.signCertificateRequest.signKeyName, None, body))


@router.post("/v1/certificate/selfsign", tags=REQUESTS, status_code=status.HTTP_201_CREATED,
             operation_id="selfSignCertificateWithSkaKey", response_model=SignRequestIdDto,
             summary="Request a self-signed certificate of an SKA key")
def certificate_self_sign(body: SignedSelfSignCertificateRequestDto, ska: SkaDep,
                          services: ServicesDep, caller: CallerDep) -> SignRequestIdDto:
    return SignRequestIdDto(signRequestId=_submit(
        ska, services, caller, RequestKind.CERTIFICATE_SELF_SIGN, body.selfSignCertificateRequest.signKeyName, None, body))


# -- status --------------------------------------------------------------------------------------------


@router.get("/v1/request/{id}", tags=REQUESTS, operation_id="getRequestStatus", response_model=RequestStatusDto,
            summary="Status and result of an asynchronous request")
def get_request(ska: SkaDep, services: ServicesDep, caller: CallerDep, id: str = RequestIdPath) -> RequestStatusDto:
    view = services.key_use.audit(caller).run("getRequestStatus", None, lambda: ska.requests.view(id), ska_request_id=id)
    return status_dto(view)


@router.delete("/v1/request/{id}", tags=REQUESTS, operation_id="cancelRequest",
               summary="Cancel a PENDING or APPROVED request (status CANCELLED); "
                       "erase the result of an EXECUTED one", **empty_response())
def cancel_request(ska: SkaDep, services: ServicesDep, caller: CallerDep, id: str = RequestIdPath) -> Response:
    ska.requests.cancel(id, services.key_use.audit(caller))
    return empty()


@router.post("/v1/filteredRequests", tags=REQUESTS, operation_id="filteredRequests",
             response_model=RequestsResponseDto, summary="Requests of the partition, by status")
def filtered_requests(ska: SkaDep, services: ServicesDep, caller: CallerDep,
                      body: FilteredRequestsDto | None = None) -> RequestsResponseDto:
    statuses = None if body is None or not body.requestStatusList else [str(s) for s in body.requestStatusList]
    views = services.key_use.audit(caller).run("filteredRequests", None, lambda: ska.requests.find(statuses))
    return RequestsResponseDto(requests=[status_dto(view) for view in views])


# -- synchronous block / unblock / modify ---------------------------------------------------------------


def _block_or_unblock(kind: RequestKind, operation: str, envelope: str, label: str, password: str | None,
                      approvals: list[bytes] | None, ska: SkaServices,
                      services: PartitionServices, caller: Caller) -> Response:
    """Synchronous block or unblock: check the key password, then apply the change with the
    signed approvals of the key's ruleBlock / ruleUnblock, audited as one mutating operation."""
    services.key_use.check_password(caller, KeyRef(label, password, f"{envelope}.keyPassword"))
    services.key_use.audit(caller).mutating(operation, label, lambda: ska.approvals.synchronous_management(
        kind, label, block_payload(label), {}, approvals or []))
    return empty()


@router.post("/v1/synchronousBlock", tags=SYNCHRONOUS, operation_id="synchronousBlock",
             summary="Block an SKA key now, with the approvals of its ruleBlock", **empty_response())
def synchronous_block(body: SignedSynchronousBlockKeyRequestDto, ska: SkaDep,
                      services: ServicesDep, caller: CallerDep) -> Response:
    request = body.blockRequest
    return _block_or_unblock(RequestKind.BLOCK, "synchronousBlock", "blockRequest", request.blockKeyName,
                             request.keyPassword, request.signedApprovals, ska, services, caller)


@router.post("/v1/synchronousUnblock", tags=SYNCHRONOUS, operation_id="synchronousUnblock",
             summary="Unblock an SKA key now, with the approvals of its ruleUnblock", **empty_response())
def synchronous_unblock(body: SignedSynchronousUnblockKeyRequestDto, ska: SkaDep,
                        services: ServicesDep, caller: CallerDep) -> Response:
    request = body.unblockRequest
    return _block_or_unblock(RequestKind.UNBLOCK, "synchronousUnblock", "unblockRequest", request.unblockKeyName,
                             request.keyPassword, request.signedApprovals, ska, services, caller)


@router.post("/v1/synchronousModify", tags=SYNCHRONOUS, operation_id="synchronousModify",
             summary="Replace the policy of an SKA key now, with the approvals of its ruleModify",
             **empty_response())
def synchronous_modify(body: SignedSynchronousModifyKeyRequestDto, ska: SkaDep,
                       services: ServicesDep, caller: CallerDep) -> Response:
    request = body.modifyRequest
    label = request.modifyKeyName
    services.key_use.check_password(caller, KeyRef(label, request.keyPassword, "modifyRequest.keyPassword"))
    policy = services.keys.resolved(Policy.from_wire(request.policy, field="modifyRequest.policy", key_status=False),
                                    field="modifyRequest.policy")
    services.key_use.audit(caller).mutating("synchronousModify", label, lambda: ska.approvals.synchronous_management(
        RequestKind.MODIFY, label, binary_policy(policy), {"policy": request.policy},
        request.signedApprovals or []))
    return empty()
