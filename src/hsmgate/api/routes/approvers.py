"""Tag "Approver Management": approvers whose key pair hsmgate makes and hands out once (wave-2 §2.3;
docs/approvers.md).

``/v1/approverManagement/**`` needs the approverKeyManagement role; ``/v1/approver/onboard`` (and its
older name ``/v1/approverManagement/onboard``) the approver role. Onboarding hands out key material
(the approver's PKCS#12, transport-encrypted): it is an :class:`OperationRoute`. Every call is
audited, with the approver's name in the record's key field.
"""

from __future__ import annotations

from fastapi import Path, Response

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.operation_route import OperationRoute
from hsmgate.api.routes import empty, empty_response, tsb_router
from hsmgate.api.wire.approvers import (
    ApproverCreateDto,
    ApproverNameDto,
    ApproverOnboardDto,
    ApproverOnboardingCertificateDto,
    ApproverOnboardingStatusResponseDto,
    ApproverOnboardResponseDto,
    ApproverRestoreWithPasswordUnknownDto,
    OneTimeCodeDto,
    UnwrapRequestIdDto,
)
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.domain.gateway import PartitionServices
from hsmgate.domain.key_use import Caller
from hsmgate.domain.ska.approvers import ApproverEntry, ApproverService

TAGS = ["Approver Management"]
router = tsb_router(tags=TAGS, responses=ERROR_RESPONSES)
onboard_router = tsb_router(tags=TAGS, responses=ERROR_RESPONSES, route_class=OperationRoute)

ApproverNamePath = Path(min_length=1, max_length=256, description="The approver's name")


def _approvers(services: PartitionServices) -> ApproverService:
    return services.require_ska().require_approvers()


def _create(body: ApproverCreateDto, services: ServicesDep, caller: CallerDep) -> OneTimeCodeDto:
    code = services.key_use.audit(caller).mutating("createApprover", body.approverName, lambda: _approvers(
        services).create(name=body.approverName, algorithm=body.algorithm, key_size=body.keySize,
                         backup_password=body.backupPassword, validity=body.validity))
    return OneTimeCodeDto(oneTimeCode=code)


for _method in ("PUT", "POST"):  # the reference's text says POST, every sample PUT (wave-2 §2.3)
    router.add_api_route("/v1/approverManagement/create", _create, methods=[_method], response_model=OneTimeCodeDto,
                         operation_id=f"createApprover{'ByPost' if _method == 'POST' else ''}",
                         summary="Create an approver: its RSA key pair, certificate and sealed PKCS#12; "
                                 "answers a one-time code")


def _onboard(body: ApproverOnboardDto, services: ServicesDep, caller: CallerDep) -> ApproverOnboardResponseDto:
    payload = services.key_use.audit(caller).mutating("onboardApprover", body.approverName, lambda: _approvers(
        services).onboard(name=body.approverName, code=body.oneTimeCode, transport_password=body.transportPassword))
    return ApproverOnboardResponseDto(encryptedPayload=encode_base64(payload.encrypted_payload),
                                      initializationVector=encode_base64(payload.initialization_vector))


for _path, _name in (("/v1/approver/onboard", "onboardApprover"),
                     ("/v1/approverManagement/onboard", "onboardApproverOlderPath")):
    onboard_router.add_api_route(_path, _onboard, methods=["POST"], response_model=ApproverOnboardResponseDto,
                                 operation_id=_name, summary="Redeem a one-time code: the approver's PKCS#12, "
                                                             "AES-GCM under the transport password")


def _new_code(operation: str, body: ApproverNameDto, services: PartitionServices, caller: Caller) -> OneTimeCodeDto:
    code = services.key_use.audit(caller).mutating(operation, body.approverName,
                                                   lambda: _approvers(services).renew(body.approverName))
    return OneTimeCodeDto(oneTimeCode=code)


@router.post("/v1/approverManagement/restoreFromBackup", operation_id="restoreApprover", response_model=OneTimeCodeDto,
             summary="The approver knows its backup password: a new one-time code for the same backup")
def restore_from_backup(body: ApproverNameDto, services: ServicesDep, caller: CallerDep) -> OneTimeCodeDto:
    return _new_code("restoreApprover", body, services, caller)


@router.post("/v1/approverManagement/renewOneTimeCode", operation_id="renewApproverOneTimeCode",
             response_model=OneTimeCodeDto, summary="A new one-time code; the previous one no longer works")
def renew_one_time_code(body: ApproverNameDto, services: ServicesDep, caller: CallerDep) -> OneTimeCodeDto:
    return _new_code("renewApproverOneTimeCode", body, services, caller)


@router.post("/v1/approverManagement/restoreFromBackup/forgotPassword", operation_id="restoreApproverForgotPassword",
             response_model=UnwrapRequestIdDto,
             summary="The backup password is lost: an asynchronous request under the backup key's policy; "
                     "its result is the new one-time code")
def restore_forgot_password(body: ApproverRestoreWithPasswordUnknownDto, services: ServicesDep,
                            caller: CallerDep) -> UnwrapRequestIdDto:
    audit = services.key_use.audit(caller)
    request_id = _approvers(services).forgot_password(body.approverName, body.newBackupPassword, audit)
    return UnwrapRequestIdDto(unwrapRequestId=request_id)


def _entry(entry: ApproverEntry) -> ApproverOnboardingCertificateDto:
    return ApproverOnboardingCertificateDto(approverName=entry.name, approverCertificate=encode_base64(entry.certificate))


def _status(services: ServicesDep, caller: CallerDep) -> ApproverOnboardingStatusResponseDto:
    status = services.key_use.audit(caller).run("approverOnboardingStatus", None,
                                                lambda: _approvers(services).status())
    return ApproverOnboardingStatusResponseDto(onboarded=[_entry(e) for e in status.onboarded],
                                               pending=[_entry(e) for e in status.pending])


for _method in ("GET", "POST"):  # the dedicated pages say GET, create-policy-based-key.md POST
    router.add_api_route("/v1/approverManagement/onboarding/status", _status, methods=[_method],
                         response_model=ApproverOnboardingStatusResponseDto,
                         operation_id=f"approverOnboardingStatus{'ByPost' if _method == 'POST' else ''}",
                         summary="Onboarded approvers and those holding an unused one-time code")


@router.delete("/v1/approverManagement/delete/{approverName}", operation_id="deleteApprover",
               summary="Delete an approver and its open tasks; policies naming it no longer resolve",
               **empty_response())
def delete_approver(services: ServicesDep, caller: CallerDep, approverName: str = ApproverNamePath) -> Response:
    services.key_use.audit(caller).mutating("deleteApprover", approverName,
                                            lambda: _approvers(services).delete(approverName))
    return empty()
