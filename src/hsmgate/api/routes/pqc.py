"""Tag "Post-Quantum (ML-KEM)": key encapsulation with ML-KEM keys (FIPS 203).

The TSB 2.x reference documents no ML-KEM endpoints; the shapes here are those of the TSB's own Go
client (2026): ``/v1/encapsulate`` takes a public key, ``/v1/synchronousDecapsulate`` a key name and
a ciphertext. The asynchronous ``/v1/decapsulate`` (SKA approvals) is not implemented.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from hsmgate.api.deps import ServicesDep
from hsmgate.api.execution import run_operation
from hsmgate.api.lenient_json import TsbRoute
from hsmgate.api.routes.sync_ops import approved
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.pqc import (
    DecapsulateResponseDto,
    EncapsulateRequestDto,
    EncapsulateResponseDto,
    SynchronousDecapsulateRequestDto,
)
from hsmgate.domain import errors
from hsmgate.domain.kem import KemService

router = APIRouter(route_class=TsbRoute, tags=["Post-Quantum (ML-KEM)"], responses=ERROR_RESPONSES)


@router.post("/v1/encapsulate", operation_id="encapsulate", response_model=EncapsulateResponseDto,
             summary="ML-KEM encapsulation: a fresh shared secret and its ciphertext for a public key")
def encapsulate(body: EncapsulateRequestDto, services: ServicesDep) -> EncapsulateResponseDto:
    if body.keyName is not None:
        services.passwords.check(body.keyName, body.keyPassword)
    elif body.keyPassword:
        raise errors.ValidationFailed("'keyPassword' is only used with 'keyName'")
    ciphertext, shared = KemService(services.partition).encapsulate(public_key=body.publicKey, label=body.keyName)
    return EncapsulateResponseDto(ciphertext=encode_base64(ciphertext), sharedSecret=encode_base64(shared))


@router.post("/v1/synchronousDecapsulate", operation_id="synchronousDecapsulate",
             response_model=DecapsulateResponseDto,
             summary="ML-KEM decapsulation inside the backend (key needs decrypt or derive)")
async def synchronous_decapsulate(body: SynchronousDecapsulateRequestDto, services: ServicesDep,
                                  http: Request) -> DecapsulateResponseDto:
    request = body.decapsulationRequest

    def decapsulate() -> bytes:
        services.passwords.check(request.decapsulationKeyName, request.keyPassword)
        with approved(services, request.decapsulationKeyName, request.ciphertext, request.signedApprovals):  # SKA
            return KemService(services.partition).decapsulate(label=request.decapsulationKeyName,
                                                              ciphertext=request.ciphertext)

    return DecapsulateResponseDto(sharedSecret=encode_base64(await run_operation(http, decapsulate)))
