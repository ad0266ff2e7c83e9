"""Tag "Service Information": version, licence flags, statistics, random bytes, health."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hsmgate import __version__
from hsmgate.api.deps import CallerDep, GatewayDep, ServicesDep, SettingsDep
from hsmgate.api.routes import tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.domain import errors

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
