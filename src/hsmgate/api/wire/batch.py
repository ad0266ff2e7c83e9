"""Batch sign and verify DTOs (hsmgate extension; the items are the TSB's own request objects).

An item that fails validation does not fail the batch: it is kept as :class:`InvalidItem` and
answered with its own error in the results, in request order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from hsmgate.api.wire.common import ErrorBody, WireModel
from hsmgate.api.wire.signing import SynchronousSignRequestDto, VerifySignatureRequestDto


@dataclass(frozen=True, slots=True)
class InvalidItem:
    """An item of a batch that did not validate; ``errors`` are pydantic's error dicts."""

    errors: list[dict[str, Any]]


def _keep_invalid(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        return InvalidItem(list(exc.errors(include_url=False)))


#: The JSON schema is the item's own; at run time an invalid item becomes :class:`InvalidItem`.
LenientSignRequest = Annotated[SynchronousSignRequestDto, WrapValidator(_keep_invalid)]
LenientVerifyRequest = Annotated[VerifySignatureRequestDto, WrapValidator(_keep_invalid)]


class SynchronousSignBatchRequestDto(WireModel):
    signRequests: list[LenientSignRequest] = Field(  # type: ignore[valid-type]
        description="The signRequest objects of /v1/synchronousSign, signed in this order "
                    "(1 … HSMGATE_MAX_BATCH items, default 1000)",
        json_schema_extra={"minItems": 1},
    )


class VerifyBatchRequestDto(WireModel):
    verifyRequests: list[LenientVerifyRequest] = Field(  # type: ignore[valid-type]
        description="The verifySignatureRequest objects of /v1/verify, checked in this order "
                    "(1 … HSMGATE_MAX_BATCH items, default 1000)",
        json_schema_extra={"minItems": 1},
    )


class SignatureResult(BaseModel):
    signature: str = Field(description="base64 signature, as /v1/synchronousSign returns it")


class VerifyResult(BaseModel):
    signatureValid: bool


class SynchronousSignBatchResponseDto(BaseModel):
    results: list[SignatureResult | ErrorBody] = Field(
        description="One result per request item, in request order: a signature or the item's TSB error"
    )


class VerifyBatchResponseDto(BaseModel):
    results: list[VerifyResult | ErrorBody] = Field(
        description="One result per request item, in request order: the verdict or the item's TSB error"
    )
