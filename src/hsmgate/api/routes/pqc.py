"""Tag "Post-Quantum (ML-KEM)": key encapsulation with ML-KEM keys (FIPS 203).

The TSB 2.x reference documents no ML-KEM endpoints; the shapes here are those of the TSB's own Go
client (2026): ``/v1/encapsulate`` takes a public key, ``/v1/synchronousDecapsulate`` a key name and
a ciphertext. The asynchronous ``/v1/decapsulate`` (SKA approvals) is an SKA request
(``api/routes/requests.py``).
"""

from __future__ import annotations

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.operation_route import OperationRoute
from hsmgate.api.routes import tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.pqc import (
    DecapsulateResponseDto,
    EncapsulateRequestDto,
    EncapsulateResponseDto,
    SynchronousDecapsulateRequestDto,
)
from hsmgate.domain import errors
from hsmgate.domain.key_use import KeyRef

router = tsb_router(route_class=OperationRoute, tags=["Post-Quantum (ML-KEM)"], responses=ERROR_RESPONSES)


@router.post("/v1/encapsulate", operation_id="encapsulate", response_model=EncapsulateResponseDto,
             summary="ML-KEM encapsulation: a fresh shared secret and its ciphertext for a public key")
def encapsulate(body: EncapsulateRequestDto, services: ServicesDep, caller: CallerDep) -> EncapsulateResponseDto:
    if body.keyName is None and body.keyPassword:
        raise errors.ValidationFailed("'keyPassword' is only used with 'keyName'")
    key = KeyRef(body.keyName, body.keyPassword) if body.keyName is not None else None
    if key is None and body.publicKey is None:
        raise errors.ValidationFailed("exactly one of 'publicKey' and 'keyName' must be given")
    ciphertext, shared = services.key_use.encapsulate(caller, key=key, public_key=body.publicKey)
    return EncapsulateResponseDto(ciphertext=encode_base64(ciphertext), sharedSecret=encode_base64(shared))


@router.post("/v1/synchronousDecapsulate", operation_id="synchronousDecapsulate",
             response_model=DecapsulateResponseDto,
             summary="ML-KEM decapsulation inside the backend (key needs decrypt, derive or unwrap)")
def synchronous_decapsulate(body: SynchronousDecapsulateRequestDto, services: ServicesDep,
                            caller: CallerDep) -> DecapsulateResponseDto:
    request = body.decapsulationRequest
    shared = services.key_use.decapsulate(caller, KeyRef(request.decapsulationKeyName, request.keyPassword),
                                          request.ciphertext, approvals=request.signedApprovals)
    return DecapsulateResponseDto(sharedSecret=encode_base64(shared))
