"""Tag "Synchronous Key Operations": sign and verify (reference §3.2, §5.1–5.3)."""

from __future__ import annotations

from fastapi import APIRouter

from hsmgate.api.deps import ServicesDep
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.signing import (
    SignatureResponseDto,
    SignedSynchronousSignRequestDto,
    SignedVerifySignatureRequestDto,
    VerifySignatureResponseDto,
)
from hsmgate.domain import errors
from hsmgate.domain.algorithms import SignatureType

router = APIRouter(tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES)


@router.post("/v1/synchronousSign", operation_id="synchronousSign", response_model=SignatureResponseDto,
             summary="Sign a payload with a key of the partition")
def synchronous_sign(body: SignedSynchronousSignRequestDto, services: ServicesDep) -> SignatureResponseDto:
    request = body.signRequest
    if request.keyPassword:
        raise errors.UnsupportedOperation("'signRequest.keyPassword': key passwords are not supported by this hsmgate version")
    if request.signedApprovals:
        raise errors.UnsupportedOperation("'signRequest.signedApprovals': Smart Key Attributes are not supported by this hsmgate version")
    if request.context:
        raise errors.UnsupportedOperation("'signRequest.context' is only used by ML-DSA / SLH-DSA, which this hsmgate version does not support")
    signature = services.signing.sign(
        label=request.signKeyName, algorithm=str(request.signatureAlgorithm), payload=request.payload,
        signature_type=SignatureType(request.signatureType) if request.signatureType else None,
    )
    return SignatureResponseDto(signature=encode_base64(signature))


@router.post("/v1/verify", operation_id="verifySignature", response_model=VerifySignatureResponseDto,
             summary="Verify a signature with a key of the partition")
def verify_signature(body: SignedVerifySignatureRequestDto, services: ServicesDep) -> VerifySignatureResponseDto:
    request = body.verifySignatureRequest
    valid = services.signing.verify(
        label=request.signKeyName, algorithm=str(request.signatureAlgorithm), payload=request.payload,
        signature=request.signature,
    )
    return VerifySignatureResponseDto(signatureValid=valid)
