"""``POST /v1/createRfcTimestamp`` (tag "Synchronous Key Operations", reference §3.2, §5.6)."""

from __future__ import annotations

from hsmgate.api.operations_deps import RfcTimestampsDep
from hsmgate.api.routes import tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.operations import CreateRfcTimestampDto, RfcTimestampResponseDto

router = tsb_router(tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES)


@router.post("/v1/createRfcTimestamp", operation_id="createRfcTimestamp", response_model=RfcTimestampResponseDto,
             summary="An RFC 3161 TimeStampToken over the payload, signed by the configured timestamp key")
def create_rfc_timestamp(body: CreateRfcTimestampDto, timestamps: RfcTimestampsDep) -> RfcTimestampResponseDto:
    token = timestamps.create(payload=body.payload, hash_name=body.hashAlgorithm)
    return RfcTimestampResponseDto(timestamp=encode_base64(token))
