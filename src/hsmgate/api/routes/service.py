"""Tag "Service Information": version, licence flags, statistics, random bytes, health."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path as PathParam
from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hsmgate import __version__
from hsmgate.api.deps import CallerDep, GatewayDep, ServicesDep, SettingsDep
from hsmgate.api.routes import tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.log import HsmLog, LogRecordDto, LogRecordsDto
from hsmgate.domain import errors
from hsmgate.domain.audit.log import DEFAULT_PAGE, MAX_PAGE, LogQuery

log = logging.getLogger("hsmgate.api")

router = tsb_router(tags=["Service Information"], responses=ERROR_RESPONSES)

#: Licence flags of the features this build implements (the TSB's ``clientFlags``).
CLIENT_FLAGS = ["REST_API", "TSB_ENGINE", "KEY_AUTH"]  # TSB_ENGINE, KEY_AUTH: SKA


class VersionInfo(BaseModel):
    Version: str
    Vendor: str


class LicenseInfo(BaseModel):
    clientFlags: list[str]


class KeyStoreStatistics(BaseModel):
    keyStoreStatistics: str


class RandomResponse(BaseModel):
    random: str


class Health(BaseModel):
    """What an unauthenticated load balancer learns: UP or DOWN, nothing about the partitions,
    the backend or why (the reason is in the server log)."""

    status: Literal["UP", "DOWN"] = Field(examples=["UP"])


@router.get("/v1/versionInfo", operation_id="getVersionInfo", response_model=VersionInfo)
def version_info() -> VersionInfo:
    return VersionInfo(Version=__version__, Vendor="hsmgate")


@router.get("/v1/licenseInfo", operation_id="getLicenseInfo", response_model=LicenseInfo)
def license_info() -> LicenseInfo:
    return LicenseInfo(clientFlags=CLIENT_FLAGS)


@router.get("/v1/keystore/statistics", operation_id="getKeyStoreStatistics", response_model=KeyStoreStatistics)
def keystore_statistics(services: ServicesDep, caller: CallerDep) -> KeyStoreStatistics:
    labels = services.admin.labels(caller)
    backend = services.partition.capabilities().backend
    return KeyStoreStatistics(
        keyStoreStatistics=f"partition={services.partition.name}; backend={backend}; keys={len(labels)}"
    )


@router.get("/v1/hsm/log", operation_id="getHsmLog", response_model=HsmLog,
            summary="The partition log: the last audit records as text lines")
def hsm_log(services: ServicesDep) -> HsmLog:
    return HsmLog(log=services.require_audit_log().text())


@router.get("/v1/hsm/log/records", operation_id="getHsmLogRecords", response_model=LogRecordsDto,
            summary="Audit records, filtered and paged, each with its chain position and hash (hsmgate)")
def hsm_log_records(
    services: ServicesDep,
    time_from: Annotated[datetime | None, Query(alias="from", description="Records at or after this time "
                                                "(ISO 8601; without an offset: UTC)")] = None,
    time_to: Annotated[datetime | None, Query(alias="to", description="Records before this time")] = None,
    key_name: Annotated[str | None, Query(alias="keyName", max_length=512, description="Exact key name")] = None,
    operation: Annotated[str | None, Query(max_length=64, description="Exact operation, e.g. sign")] = None,
    caller: Annotated[str | None, Query(max_length=512, description="Exact principal")] = None,
    after: Annotated[int, Query(ge=0, description="Cursor: records after this seq (the previous page's next)")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Records per page")] = DEFAULT_PAGE,
) -> LogRecordsDto:
    page = services.require_audit_log().page(LogQuery(after=after, limit=limit, time_from=time_from,
                                                      time_to=time_to, key_name=key_name, operation=operation,
                                                      caller=caller))
    return LogRecordsDto(records=[LogRecordDto(seq=r.seq, hash=r.hash, record=r.fields) for r in page.records],
                         next=page.next_after)


@router.get("/v1/generateRandom/{length}", operation_id="generateRandom", response_model=RandomResponse,
            tags=["Synchronous Key Operations"])
def generate_random(services: ServicesDep, caller: CallerDep, settings: SettingsDep,
                    length: int = PathParam(description="Number of random bytes")) -> RandomResponse:
    if not 1 <= length <= settings.max_random_length:
        raise errors.TsbError(f"'length' must be between 1 and {settings.max_random_length}", code=619)
    return RandomResponse(random=encode_base64(services.key_use.random(caller, length)))


@router.get("/health", operation_id="health", response_model=Health,
            responses={503: {"model": Health, "description": "A partition's backend does not answer"}},
            summary="Liveness and backend reachability for load balancers")
def health(gateway: GatewayDep) -> Health | JSONResponse:
    """``{"status": "UP"}``, or 503 ``{"status": "DOWN"}`` when a served partition's backend does
    not answer. The route is open (no credentials), so the body names no partition and no error:
    the failure is logged instead."""
    try:
        gateway.check_backends()
    except errors.TsbError as exc:
        log.warning("health: DOWN: %s %s", exc.code, exc.message)
        return JSONResponse(Health(status="DOWN").model_dump(), status_code=503)
    return Health(status="UP")
