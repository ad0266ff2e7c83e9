"""``POST /v1/createRfcTimestamp`` (tag "Synchronous Key Operations", reference §3.2, §5.6)."""

from __future__ import annotations

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.operation_route import OperationRoute
from hsmgate.api.routes import tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.operations import CreateRfcTimestampDto, RfcTimestampResponseDto

router = tsb_router(tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES, route_class=OperationRoute)


@router.post("/v1/createRfcTimestamp", operation_id="createRfcTimestamp", response_model=RfcTimestampResponseDto,
             summary="An RFC 3161 TimeStampToken over the payload, signed by the configured timestamp key")
def create_rfc_timestamp(body: CreateRfcTimestampDto, services: ServicesDep,
                         caller: CallerDep) -> RfcTimestampResponseDto:
    token = services.key_use.rfc_timestamp(caller, payload=body.payload, hash_name=body.hashAlgorithm)
    return RfcTimestampResponseDto(timestamp=encode_base64(token))
