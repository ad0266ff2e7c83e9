"""Tag "Approval Tasks": approvers fetch their tasks, approve and reject (reference §3.4, §6.3, §6.4).

Approvers authenticate by a fresh timestamp signed with their key (``domain/ska/approvals.py``), not by
the caller's JWT. Task lists carry the fields of their ``detailLevel`` only (level1 ⊂ … ⊂ level6).
``/v1/task`` (GAP: the method is not public) accepts DELETE with a JSON body and POST; deleting a
task rejects it and the approver appears in ``rejectedBy``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.routes import empty, empty_response, tsb_router
from hsmgate.api.routes.requests import SkaDep, status_dto
from hsmgate.api.wire.common import ERROR_RESPONSES
from hsmgate.api.wire.ska import (
    AuthenticatableRequestDto,
    DeleteTaskRequestDto,
    FilteredTasksRequestDto,
    GetTasksResponseDto,
    SendApprovalDto,
)
from hsmgate.domain.errors import TsbError
from hsmgate.domain.gateway import PartitionServices
from hsmgate.domain.key_use import Caller
from hsmgate.domain.ska.approval_token import ApprovalToBeSigned
from hsmgate.domain.ska.approvals import Authentication, Paging, SkaServices, SortOrder, TaskItem
from hsmgate.domain.ska.requests import KINDS, SIGNED_FIELDS, TASK_FILTERS, RequestKind, kinds_of_filter
from hsmgate.domain.ska.timestamp_key import TIMESTAMP_SIGNATURE_ALGORITHM

router = tsb_router(tags=["Approval Tasks"], responses=ERROR_RESPONSES)

#: The ``signed…`` fields every level-3 task carries (null but the task's own): the nine of the
#: reference (§6.3, TSB 2.2). The decapsulation envelope (newer than the reference, GAP) appears on
#: decapsulation tasks only, so every other task keeps the documented shape for approval clients
#: that refuse unknown fields.
_LEVEL3_FIELDS = tuple(name for name in SIGNED_FIELDS if name != KINDS[RequestKind.DECAPSULATE].signed_field)


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def authentication(body: AuthenticatableRequestDto) -> Authentication:
    return Authentication(
        timestamp=body.timestamp, timestamp_signature=body.timestampSignature,
        timestamp_digest_algorithm=body.timestampDigestAlgorithm, approver_public_key=body.approverPublicKey,
        approver_certificate=body.approverCertificate, timestamp_signing_certificate=body.timestampSigningCertificate,
    )


def render_task(item: TaskItem, level: int, ska: SkaServices) -> dict[str, Any]:
    """One task with the fields of ``level`` (reference §6.3)."""
    task, request = item.task, item.request
    spec = KINDS[item.kind]
    token_bytes = bytes(request.token or b"")
    out: dict[str, Any] = {
        "detailLevel": f"level{level}", "id": task.id, "approvalToBeSigned": _b64(token_bytes),
        "approverPublicKey": _b64(task.approver),
    }
    if level < 2:
        return out
    envelope = json.loads(request.request)
    inner = envelope.get(spec.envelope) or {}
    token = ApprovalToBeSigned.decode(token_bytes)
    out |= {
        "metaData": inner.get("metaData"), "metaDataSignature": inner.get("metaDataSignature"),
        "payload": _b64(token.payload), "payloadType": inner.get("payloadType") or "UNSPECIFIED",
    }
    if level < 3:
        return out
    out["requestBase64"] = _b64(request.request.encode("utf-8"))
    for name in _LEVEL3_FIELDS:
        out[name] = None
    out[spec.signed_field] = envelope
    if level < 4:
        return out
    out |= {
        "timestamp": _b64(token.timestamp), "timestampSignature": _b64(token.timestamp_signature),
        "timestampSignatureAlgorithm": None if token.is_time_less else TIMESTAMP_SIGNATURE_ALGORITHM,
        "timestampSignatureWithAlgorithm": _b64(token.timestamp_signature_der),
    }
    if level < 5:
        return out
    try:
        signed = ska.requests.keys.describe(request.key_label)
        out |= {"keyAttributes": signed.xml, "keyAttributesSignature": signed.xml_signature}
    except TsbError:  # the key is gone
        out |= {"keyAttributes": None, "keyAttributesSignature": None}
    if level < 6:
        return out
    out["requestStatus"] = status_dto(ska.requests.view(request.id)).model_dump(mode="json")
    return out


def _task_list(name: str) -> Callable[..., JSONResponse]:
    kinds = kinds_of_filter(name)

    def handler(body: FilteredTasksRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> JSONResponse:
        def tasks() -> list[dict[str, Any]]:
            caller = ska.approvals.authenticate(authentication(body))
            paging, page = None, body.paging
            if page is not None:
                paging = Paging(page.pageNumber, page.pageSize, SortOrder(str(page.sortOrder)))
            items = ska.approvals.tasks(caller, kinds, task_id=body.id, request_id=body.requestId,
                                        paging=paging)
            level = int(str(body.detailLevel.value)[-1])
            return [render_task(item, level, ska) for item in items]

        # recorded (with the request id asked for, if it can be one) before the tasks are handed out
        asked = body.requestId if body.requestId and len(body.requestId) <= 64 else None
        listed = services.key_use.audit(caller).run(f"filter{name}Tasks", None, tasks, ska_request_id=asked)
        return JSONResponse({"tasks": listed})

    handler.__name__ = f"filtered_{name.lower()}_approval_tasks"
    return handler


for _name in TASK_FILTERS:
    router.add_api_route(
        f"/v1/filtered{_name}ApprovalTask", _task_list(_name), methods=["POST"],
        operation_id=f"filter{_name}Tasks", response_model=GetTasksResponseDto,
        summary=f"Tasks of the approver ({'all kinds' if _name == 'All' else _name})",
    )


@router.post("/v1/approval", operation_id="approveTask",
             summary="Approve a task: the approver's signature over the decoded approvalToBeSigned",
             **empty_response())
def approve(body: SendApprovalDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> Response:
    ska.approvals.approve(
        task_id=body.id, token=body.approvalToBeSigned, signature=body.signature,
        digest_algorithm=body.approvalDigestAlgorithm, approver_public_key=body.approverPublicKey,
        approver_certificate=body.approverCertificate, audit=services.key_use.audit(caller),
    )
    return empty()


def _reject(body: DeleteTaskRequestDto, ska: SkaServices, services: PartitionServices, caller: Caller) -> Response:
    ska.approvals.reject(authentication(body), body.id, services.key_use.audit(caller))
    return empty()


@router.delete("/v1/task", operation_id="deleteTask", summary="Reject (delete) a task; JSON body as POST",
               **empty_response())
def delete_task(body: DeleteTaskRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> Response:
    return _reject(body, ska, services, caller)


@router.post("/v1/task", operation_id="deleteTaskByPost", summary="Reject (delete) a task",
             **empty_response())
def delete_task_by_post(body: DeleteTaskRequestDto, ska: SkaDep, services: ServicesDep, caller: CallerDep) -> Response:
    return _reject(body, ska, services, caller)
