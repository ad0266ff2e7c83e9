"""Tag "Synchronous Key Operations": batch sign and verify (hsmgate extension).

``POST /v1/synchronousSignBatch`` and ``POST /v1/verifyBatch`` run the single-request operations
item by item through the same :class:`SigningService`; each item gets its own result, in request
order, and one bad item does not fail the batch. The batch itself is refused (400 / 600, naming the
field) when its list is empty or longer than ``HSMGATE_MAX_BATCH``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Response

from hsmgate.api.deps import ServicesDep, SettingsDep
from hsmgate.api.errors import validation_message
from hsmgate.api.lenient_json import TsbRoute
from hsmgate.api.wire.batch import (
    InvalidItem,
    SynchronousSignBatchRequestDto,
    SynchronousSignBatchResponseDto,
    VerifyBatchRequestDto,
    VerifyBatchResponseDto,
)
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.signing import SynchronousSignRequestDto, VerifySignatureRequestDto
from hsmgate.domain import errors
from hsmgate.domain.algorithms import SignatureType
from hsmgate.domain.errors import REASONS, TsbError

log = logging.getLogger("hsmgate.api.batch")
router = APIRouter(route_class=TsbRoute, tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES)


def _json(content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


def _error(code: int, message: str) -> dict[str, Any]:
    return {"errorCode": code, "reason": REASONS.get(code, "res.error.general"), "message": message}


def _check_size(field: str, items: list[Any], maximum: int) -> None:
    if not items:
        raise errors.ValidationFailed(f"'{field}' must not be empty")
    if len(items) > maximum:
        raise errors.ValidationFailed(f"'{field}' must hold at most {maximum} items, got {len(items)}")


def _run(field: str, items: list[Any], operation: Callable[[Any, str], dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        if isinstance(item, InvalidItem):
            first = dict(item.errors[0]) if item.errors else {"type": "value_error", "loc": ()}
            dotted = f"{field}.{index}"
            code, message = validation_message({**first, "loc": (field, str(index), *first.get("loc", ()))})
            results.append(_error(code, message.replace(f"'{dotted}.", f"'{where}.").replace(f"'{dotted}'", f"'{where}'")))
            continue
        try:
            results.append(operation(item, where))
        except TsbError as exc:
            results.append(_error(exc.code, exc.message))
        except Exception:  # a bug: logged, reported for this item only
            log.exception("unexpected error in %s", where)
            results.append(_error(1, "internal error; see the server log"))
    return results


@router.post("/v1/synchronousSignBatch", operation_id="synchronousSignBatch",
             response_model=SynchronousSignBatchResponseDto,
             summary="Sign several payloads in one request; one result per item, in request order")
def synchronous_sign_batch(body: SynchronousSignBatchRequestDto, services: ServicesDep,
                           settings: SettingsDep) -> Response:
    _check_size("signRequests", body.signRequests, settings.max_batch)
    signing = services.signing

    def sign(request: SynchronousSignRequestDto, where: str) -> dict[str, Any]:
        services.passwords.check(request.signKeyName, request.keyPassword, field=f"{where}.keyPassword")
        if request.signedApprovals:
            raise errors.UnsupportedOperation(f"'{where}.signedApprovals': Smart Key Attributes are not supported by this hsmgate version")
        signature = signing.sign(
            label=request.signKeyName, algorithm=str(request.signatureAlgorithm), payload=request.payload,
            signature_type=SignatureType(request.signatureType) if request.signatureType else None,
            context=request.context,
        )
        return {"signature": encode_base64(signature)}

    return _json({"results": _run("signRequests", body.signRequests, sign)})


@router.post("/v1/verifyBatch", operation_id="verifyBatch", response_model=VerifyBatchResponseDto,
             summary="Verify several signatures in one request; one result per item, in request order")
def verify_batch(body: VerifyBatchRequestDto, services: ServicesDep, settings: SettingsDep) -> Response:
    _check_size("verifyRequests", body.verifyRequests, settings.max_batch)
    signing = services.signing

    def verify(request: VerifySignatureRequestDto, where: str) -> dict[str, Any]:
        services.passwords.check(request.signKeyName, request.masterKeyPassword, field=f"{where}.masterKeyPassword")
        valid = signing.verify(label=request.signKeyName, algorithm=str(request.signatureAlgorithm),
                               payload=request.payload, signature=request.signature, context=request.context)
        return {"signatureValid": bool(valid)}

    return _json({"results": _run("verifyRequests", body.verifyRequests, verify)})
