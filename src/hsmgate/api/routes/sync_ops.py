"""Tag "Synchronous Key Operations": sign and verify (reference §3.2, §5.1–5.3)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from fastapi import Request, status

from hsmgate.api.deps import ServicesDep
from hsmgate.api.execution import run_operation
from hsmgate.api.hot_route import HotRoute
from hsmgate.api.operations_deps import OperationsDep, operations_service
from hsmgate.api.routes import tsb_router
from hsmgate.api.routes.keys import key_attributes, key_response
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.keys import SignedKeyAttributesDto
from hsmgate.api.wire.operations import (
    DecryptResponseDto,
    EncryptRequestResponseDto,
    HmacResponseDto,
    SignedEncryptRequestDto,
    SignedHmacRequestDto,
    SignedSynchronousDecryptRequestDto,
    SignedSynchronousUnwrapKeyRequestDto,
    SignedVerifyHmacRequestDto,
    SignedVerifyRequestDto,
    SignedWrapKeyRequestDto,
    VerifyHmacRequestDto,
    WrapKeyResponseDto,
)
from hsmgate.api.wire.signing import (
    SignatureResponseDto,
    SignedSynchronousSignRequestDto,
    VerifySignatureResponseDto,
)
from hsmgate.domain import errors
from hsmgate.domain.algorithms import SignatureType

router = tsb_router(tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES)
#: sign and verify: the hot path (api/hot_route.py)
hot_router = tsb_router(tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES, route_class=HotRoute)


@hot_router.post("/v1/synchronousSign", operation_id="synchronousSign", response_model=SignatureResponseDto,
             summary="Sign a payload with a key of the partition")
async def synchronous_sign(body: SignedSynchronousSignRequestDto, services: ServicesDep,
                           http: Request) -> SignatureResponseDto:
    request = body.signRequest

    def sign() -> bytes:
        services.passwords.check(request.signKeyName, request.keyPassword)
        with approved(services, request.signKeyName, request.payload, request.signedApprovals):  # SKA (§6.8)
            return services.signing.sign(
                label=request.signKeyName, algorithm=str(request.signatureAlgorithm), payload=request.payload,
                signature_type=SignatureType(request.signatureType) if request.signatureType else None,
                context=request.context,
            )

    return SignatureResponseDto(signature=encode_base64(await run_operation(http, sign)))  # api/execution.py


@hot_router.post("/v1/verify", operation_id="verifySignature", response_model=VerifySignatureResponseDto,
                 summary="Verify a signature with a key of the partition")
async def verify_signature(body: SignedVerifyRequestDto, services: ServicesDep,
                           http: Request) -> VerifySignatureResponseDto:
    if body.verifySignatureRequest is None and body.verifyHmacRequest is not None:
        hmac_request = body.verifyHmacRequest  # the DOCS post HMAC checks here too
        operations = operations_service(services)
        return await run_operation(http, lambda: _verify_hmac(hmac_request, operations))
    request = body.verifySignatureRequest
    if request is None:
        raise errors.ValidationFailed("'verifySignatureRequest' must not be null")

    def verify() -> bool:
        services.passwords.check(request.signKeyName, request.masterKeyPassword, field="masterKeyPassword")
        return services.signing.verify(
            label=request.signKeyName, algorithm=str(request.signatureAlgorithm), payload=request.payload,
            signature=request.signature, context=request.context,
        )

    return VerifySignatureResponseDto(signatureValid=await run_operation(http, verify))


# -- encrypt / decrypt (§5.4) ------------------------------------------------------------------


@router.post("/v1/encrypt", operation_id="encrypt", response_model=EncryptRequestResponseDto,
             summary="Encrypt with a secret key or an RSA public key; the backend makes the IV")
def encrypt(body: SignedEncryptRequestDto, operations: OperationsDep) -> EncryptRequestResponseDto:
    request = body.encryptRequest
    result = operations.encrypt(
        label=request.encryptKeyName, password=request.keyPassword, algorithm=str(request.cipherAlgorithm),
        payload=request.payload, aad=request.additionalAuthenticationData, tag_length=request.tagLength or 0,
    )
    return EncryptRequestResponseDto(
        encryptedPayload=encode_base64(result.encrypted_payload),
        encryptedPayloadWithoutMessageAuthenticationCode=_b64(result.without_mac),
        initializationVector=_b64(result.iv), messageAuthenticationCode=_b64(result.mac),
    )


@router.post("/v1/synchronousDecrypt", operation_id="synchronousDecrypt", response_model=DecryptResponseDto,
             summary="Decrypt inside the backend; a wrong key, IV or tag is 410, never partial plaintext")
def synchronous_decrypt(body: SignedSynchronousDecryptRequestDto, operations: OperationsDep,
                        services: ServicesDep) -> DecryptResponseDto:
    request = body.decryptRequest
    with approved(services, request.decryptKeyName, request.encryptedPayload, request.signedApprovals):
        payload = operations.decrypt(
            label=request.decryptKeyName, password=request.keyPassword, algorithm=str(request.cipherAlgorithm),
            encrypted_payload=request.encryptedPayload, iv=request.initializationVector,
            aad=request.additionalAuthenticationData, tag_length=request.tagLength or 0,
        )
    return DecryptResponseDto(payload=encode_base64(payload))


# -- wrap / unwrap (§5.5) ----------------------------------------------------------------------


@router.post("/v1/wrap", operation_id="wrap", response_model=WrapKeyResponseDto,
             summary="Wrap an extractable key under an AES or RSA key (blob: raw secret or PKCS#8 DER)")
def wrap(body: SignedWrapKeyRequestDto, operations: OperationsDep) -> WrapKeyResponseDto:
    request = body.wrapKeyRequest
    blob = operations.wrap(
        key_label=request.keyToBeWrapped, key_password=request.keyToBeWrappedPassword,
        wrap_label=request.wrapKeyName, wrap_password=request.wrapKeyPassword, method=str(request.wrapMethod),
    )
    return WrapKeyResponseDto(wrappedKey=encode_base64(blob))


@router.post("/v1/synchronousUnwrap", status_code=status.HTTP_201_CREATED, operation_id="synchronousUnwrap",
             response_model=SignedKeyAttributesDto,
             summary="Unwrap a key into the partition under a new label; answers the new key's attributes")
def synchronous_unwrap(body: SignedSynchronousUnwrapKeyRequestDto, operations: OperationsDep,
                       services: ServicesDep) -> SignedKeyAttributesDto:
    request = body.unwrapKeyRequest
    if request.policy is not None:
        raise errors.UnsupportedOperation("'unwrapKeyRequest.policy': Smart Key Attributes are not supported "
                                          "on unwrapped keys")
    with approved(services, request.unwrapKeyName, request.wrappedKey, request.signedApprovals):
        signed = operations.unwrap(
            wrapped=request.wrappedKey, label=request.label, attributes=key_attributes(request.attributes),
            unwrap_label=request.unwrapKeyName, unwrap_password=request.unwrapKeyPassword,
            method=str(request.wrapMethod), algorithm=request.algorithm,
        )
    return key_response(signed)


# -- HMAC (§5.6) -------------------------------------------------------------------------------


@router.post("/v1/synchronousHmac", operation_id="hmac", response_model=HmacResponseDto,
             summary="HMAC of a payload with an HMACSHA* key")
def synchronous_hmac(body: SignedHmacRequestDto, operations: OperationsDep) -> HmacResponseDto:
    request = body.hmacRequest
    mac = operations.hmac(label=request.keyName, password=request.keyPassword, payload=request.payload)
    return HmacResponseDto(keyedHash=encode_base64(mac))


@router.post("/v1/verifyHmac", operation_id="verifyHmac", response_model=VerifySignatureResponseDto,
             summary="Check an HMAC (hsmgate's path for the TSB's verifyHmac; /v1/verify accepts it too)")
def verify_hmac(body: SignedVerifyHmacRequestDto, operations: OperationsDep) -> VerifySignatureResponseDto:
    return _verify_hmac(body.verifyHmacRequest, operations)


def _verify_hmac(request: VerifyHmacRequestDto, operations: OperationsDep) -> VerifySignatureResponseDto:
    valid = operations.hmac_verify(label=request.keyName, password=request.keyPassword, payload=request.payload,
                                   mac=request.signature)
    return VerifySignatureResponseDto(signatureValid=valid)


def approved(services: Any, label: str, payload: bytes,
             signed_approvals: list[bytes] | None) -> AbstractContextManager[None]:
    """Around a synchronous use of an SKA key: check ``signedApprovals`` (§6.8) and let the use
    pass the key's policy (``domain/ska_guard.py``). Without approvals nothing changes: a key
    whose policy needs approvals then refuses the use (401)."""
    ska = getattr(services, "ska", None)
    if not signed_approvals or ska is None:
        return nullcontext()
    return ska.approvals.synchronous_use(label, payload, signed_approvals)  # type: ignore[no-any-return]


def _b64(value: bytes | None) -> str | None:
    return None if value is None else encode_base64(value)
