"""Tag "Synchronous Key Operations": batch sign and verify (hsmgate extension).

``POST /v1/synchronousSignBatch`` and ``POST /v1/verifyBatch`` hand their items to the key-use
gate's batch operations (``domain/key_use.py``: a single signature is a batch of one there), which
check each item as the single request would — password, reserved keys, ``signedApprovals``,
policies — and sign per key and algorithm. Each item gets its own result, in request order, and
one bad item does not fail the batch. The batch itself is refused (400 / 600, naming the field)
when its list is empty or longer than ``HSMGATE_MAX_BATCH``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
from fastapi import Response

from hsmgate.api.deps import CallerDep, ServicesDep, SettingsDep
from hsmgate.api.errors import validation_message
from hsmgate.api.operation_route import OperationRoute
from hsmgate.api.routes import tsb_router
from hsmgate.api.routes.sync_ops import sign_item, verify_item
from hsmgate.api.wire.batch import (
    InvalidItem,
    SynchronousSignBatchRequestDto,
    SynchronousSignBatchResponseDto,
    VerifyBatchRequestDto,
    VerifyBatchResponseDto,
)
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.domain import errors
from hsmgate.domain.errors import REASONS, TsbError

R = TypeVar("R")
router = tsb_router(route_class=OperationRoute, tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES)


def _json(content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


def _error(code: int, message: str) -> dict[str, Any]:
    return {"errorCode": code, "reason": REASONS.get(code, "res.error.general"), "message": message}


def _check_size(field: str, items: list[Any], maximum: int) -> None:
    if not items:
        raise errors.ValidationFailed(f"'{field}' must not be empty")
    if len(items) > maximum:
        raise errors.ValidationFailed(f"'{field}' must hold at most {maximum} items, got {len(items)}")


def _results(field: str, items: Sequence[object], outcomes: Mapping[int, R | TsbError],
             answer: Callable[[R], dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per item, in request order: the item's answer, or its error (a wire-level
    validation error names the field as ``signRequests[3].payload``)."""
    results: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        if isinstance(item, InvalidItem):
            first = dict(item.errors[0]) if item.errors else {"type": "value_error", "loc": ()}
            dotted = f"{field}.{index}"
            code, message = validation_message({**first, "loc": (field, str(index), *first.get("loc", ()))})
            results.append(_error(code, message.replace(f"'{dotted}.", f"'{where}.").replace(f"'{dotted}'", f"'{where}'")))
            continue
        outcome = outcomes[index]
        results.append(_error(outcome.code, outcome.message) if isinstance(outcome, TsbError) else answer(outcome))
    return results


@router.post("/v1/synchronousSignBatch", operation_id="synchronousSignBatch",
             response_model=SynchronousSignBatchResponseDto,
             summary="Sign several payloads in one request; one result per item, in request order")
def synchronous_sign_batch(body: SynchronousSignBatchRequestDto, services: ServicesDep, caller: CallerDep,
                           settings: SettingsDep) -> Response:
    _check_size("signRequests", body.signRequests, settings.max_batch)
    items = body.signRequests
    valid = [(index, item) for index, item in enumerate(items) if not isinstance(item, InvalidItem)]
    signed = services.key_use.sign_batch(
        caller, [sign_item(item, f"signRequests[{index}]", index) for index, item in valid])
    outcomes: dict[int, bytes | TsbError] = {index: result for (index, _), result in zip(valid, signed, strict=True)}
    return _json({"results": _results("signRequests", items, outcomes,
                                      lambda signature: {"signature": encode_base64(signature)})})


@router.post("/v1/verifyBatch", operation_id="verifyBatch", response_model=VerifyBatchResponseDto,
             summary="Verify several signatures in one request; one result per item, in request order")
def verify_batch(body: VerifyBatchRequestDto, services: ServicesDep, caller: CallerDep,
                 settings: SettingsDep) -> Response:
    _check_size("verifyRequests", body.verifyRequests, settings.max_batch)
    items = body.verifyRequests
    valid = [(index, item) for index, item in enumerate(items) if not isinstance(item, InvalidItem)]
    checked = services.key_use.verify_batch(
        caller, [verify_item(item, f"verifyRequests[{index}]") for index, item in valid])
    outcomes: dict[int, bool | TsbError] = {index: result for (index, _), result in zip(valid, checked, strict=True)}
    return _json({"results": _results("verifyRequests", items, outcomes,
                                      lambda valid_signature: {"signatureValid": bool(valid_signature)})})
