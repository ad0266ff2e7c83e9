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
from fastapi import Request, Response

from hsmgate.api.deps import ServicesDep, SettingsDep
from hsmgate.api.errors import validation_message
from hsmgate.api.execution import run_operation
from hsmgate.api.hot_route import HotRoute
from hsmgate.api.routes import tsb_router
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
router = tsb_router(route_class=HotRoute, tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES)


def _json(content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


def _error(code: int, message: str) -> dict[str, Any]:
    return {"errorCode": code, "reason": REASONS.get(code, "res.error.general"), "message": message}


def _check_size(field: str, items: list[Any], maximum: int) -> None:
    if not items:
        raise errors.ValidationFailed(f"'{field}' must not be empty")
    if len(items) > maximum:
        raise errors.ValidationFailed(f"'{field}' must hold at most {maximum} items, got {len(items)}")


def _password_checker(services: Any) -> Callable[[str, str | None, str], None]:
    """``services.passwords.check`` that checks each (key, password) pair of one batch once: a batch
    of 1000 items for one key costs one hash verification (scrypt), not 1000. A refusal is
    re-raised, with its own item's field name, for every item with the same pair."""
    passed: set[tuple[str, str | None]] = set()

    def check(label: str, password: str | None, where: str) -> None:
        if (label, password) not in passed:
            services.passwords.check(label, password, field=where)
            passed.add((label, password))

    return check


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
async def synchronous_sign_batch(body: SynchronousSignBatchRequestDto, services: ServicesDep,
                                 settings: SettingsDep, http: Request) -> Response:
    _check_size("signRequests", body.signRequests, settings.max_batch)
    signing = services.signing
    check_password = _password_checker(services)
    # items are admitted one by one (validation, password, approvals), then signed per (key,
    # algorithm, encoding, context): the key is looked up once per group (SigningService.sign_many)
    groups: dict[tuple[Any, ...], list[tuple[dict[str, Any], bytes]]] = {}

    def admit(request: SynchronousSignRequestDto, where: str) -> dict[str, Any]:
        check_password(request.signKeyName, request.keyPassword, f"{where}.keyPassword")
        if request.signedApprovals:
            raise errors.UnsupportedOperation(f"'{where}.signedApprovals': Smart Key Attributes are not supported by this hsmgate version")
        slot: dict[str, Any] = {}  # filled below, in place in the results
        group = (request.signKeyName, str(request.signatureAlgorithm), request.signatureType, request.context)
        groups.setdefault(group, []).append((slot, request.payload))
        return slot

    def sign_all() -> list[dict[str, Any]]:
        results = _run("signRequests", body.signRequests, admit)
        for (label, algorithm, kind, context), members in groups.items():
            try:
                signed: list[Any] = signing.sign_many(
                    label=label, algorithm=algorithm, payloads=[payload for _, payload in members],
                    signature_type=SignatureType(kind) if kind else None, context=context)
            except TsbError as exc:
                signed = [exc] * len(members)
            except Exception:  # a bug: logged, reported for this group's items only
                log.exception("unexpected error signing a batch with key %s", label)
                signed = [None] * len(members)
            for (slot, _), result in zip(members, signed, strict=True):
                if isinstance(result, bytes):
                    slot["signature"] = encode_base64(result)
                elif isinstance(result, TsbError):
                    slot.update(_error(result.code, result.message))
                else:
                    slot.update(_error(1, "internal error; see the server log"))
        return results

    return _json({"results": await run_operation(http, sign_all)})


@router.post("/v1/verifyBatch", operation_id="verifyBatch", response_model=VerifyBatchResponseDto,
             summary="Verify several signatures in one request; one result per item, in request order")
async def verify_batch(body: VerifyBatchRequestDto, services: ServicesDep, settings: SettingsDep,
                       http: Request) -> Response:
    _check_size("verifyRequests", body.verifyRequests, settings.max_batch)
    signing = services.signing
    check_password = _password_checker(services)

    def verify(request: VerifySignatureRequestDto, where: str) -> dict[str, Any]:
        check_password(request.signKeyName, request.masterKeyPassword, f"{where}.masterKeyPassword")
        valid = signing.verify(label=request.signKeyName, algorithm=str(request.signatureAlgorithm),
                               payload=request.payload, signature=request.signature, context=request.context)
        return {"signatureValid": bool(valid)}

    return _json({"results": await run_operation(http, lambda: _run("verifyRequests", body.verifyRequests, verify))})
