"""Tag "Synchronous Key Operations": sign, verify, encrypt, decrypt, wrap, unwrap, HMAC (reference
§3.2, §5.1–5.6). Each route maps its wire DTO onto one call of the partition's key-use gate
(``domain/key_use.py``) and the answer back; :class:`OperationRoute` runs it."""

from __future__ import annotations

from fastapi import status

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.operation_route import OperationRoute
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
    SynchronousSignRequestDto,
    VerifySignatureRequestDto,
    VerifySignatureResponseDto,
)
from hsmgate.domain import errors
from hsmgate.domain.algorithms import SignatureType
from hsmgate.domain.gateway import PartitionServices
from hsmgate.domain.key_use import Caller, KeyRef, SignItem, VerifyItem
from hsmgate.domain.signing import schnorr_options

router = tsb_router(tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES, route_class=OperationRoute)


@router.post("/v1/synchronousSign", operation_id="synchronousSign", response_model=SignatureResponseDto,
             summary="Sign a payload with a key of the partition")
def synchronous_sign(body: SignedSynchronousSignRequestDto, services: ServicesDep,
                     caller: CallerDep) -> SignatureResponseDto:
    return SignatureResponseDto(signature=encode_base64(services.key_use.sign(caller, sign_item(body.signRequest))))


def sign_item(request: SynchronousSignRequestDto, where: str = "", index: int = 0) -> SignItem:
    """The domain item of a ``signRequest`` (``where``: its place in a batch, for error fields;
    ``index``: that place as a number, for the audit record)."""
    return SignItem(
        KeyRef(request.signKeyName, request.keyPassword, f"{where}.keyPassword" if where else "keyPassword"),
        algorithm=str(request.signatureAlgorithm), payload=request.payload,
        signature_type=SignatureType(request.signatureType) if request.signatureType else None,
        context=request.context, approvals=request.signedApprovals,
        schnorr=schnorr_options(request.auxiliaryRandomData, request.taprootTweakData, request.merkleRootData),
        index=index,
    )


def verify_item(request: VerifySignatureRequestDto, where: str = "") -> VerifyItem:
    """The domain item of a ``verifySignatureRequest``."""
    field = f"{where}.masterKeyPassword" if where else "masterKeyPassword"
    return VerifyItem(KeyRef(request.signKeyName, request.masterKeyPassword, field),
                      algorithm=str(request.signatureAlgorithm), payload=request.payload,
                      signature=request.signature, context=request.context)


@router.post("/v1/verify", operation_id="verifySignature", response_model=VerifySignatureResponseDto,
             summary="Verify a signature (or, as the TSB documentation posts it, an HMAC) with a key of the partition")
def verify_signature(body: SignedVerifyRequestDto, services: ServicesDep,
                     caller: CallerDep) -> VerifySignatureResponseDto:
    if body.verifySignatureRequest is None and body.verifyHmacRequest is not None:
        return _verify_hmac(body.verifyHmacRequest, services, caller)
    if body.verifySignatureRequest is None:
        raise errors.ValidationFailed("'verifySignatureRequest' must not be null")
    return VerifySignatureResponseDto(
        signatureValid=services.key_use.verify(caller, verify_item(body.verifySignatureRequest)))


# -- encrypt / decrypt (§5.4) ------------------------------------------------------------------


@router.post("/v1/encrypt", operation_id="encrypt", response_model=EncryptRequestResponseDto,
             summary="Encrypt with a secret key or an RSA public key; the backend makes the IV")
def encrypt(body: SignedEncryptRequestDto, services: ServicesDep, caller: CallerDep) -> EncryptRequestResponseDto:
    request = body.encryptRequest
    result = services.key_use.encrypt(
        caller, KeyRef(request.encryptKeyName, request.keyPassword), algorithm=str(request.cipherAlgorithm),
        payload=request.payload, aad=request.additionalAuthenticationData, tag_length=request.tagLength or 0,
    )
    return EncryptRequestResponseDto(
        encryptedPayload=encode_base64(result.encrypted_payload),
        encryptedPayloadWithoutMessageAuthenticationCode=_b64(result.without_mac),
        initializationVector=_b64(result.iv), messageAuthenticationCode=_b64(result.mac),
    )


@router.post("/v1/synchronousDecrypt", operation_id="synchronousDecrypt", response_model=DecryptResponseDto,
             summary="Decrypt inside the backend; a wrong key, IV or tag is 410, never partial plaintext")
def synchronous_decrypt(body: SignedSynchronousDecryptRequestDto, services: ServicesDep,
                        caller: CallerDep) -> DecryptResponseDto:
    request = body.decryptRequest
    payload = services.key_use.decrypt(
        caller, KeyRef(request.decryptKeyName, request.keyPassword), algorithm=str(request.cipherAlgorithm),
        encrypted_payload=request.encryptedPayload, iv=request.initializationVector,
        aad=request.additionalAuthenticationData, tag_length=request.tagLength or 0,
        approvals=request.signedApprovals,
    )
    return DecryptResponseDto(payload=encode_base64(payload))


# -- wrap / unwrap (§5.5) ----------------------------------------------------------------------


@router.post("/v1/wrap", operation_id="wrap", response_model=WrapKeyResponseDto,
             summary="Wrap an extractable key under an AES or RSA key (blob: raw secret or PKCS#8 DER)")
def wrap(body: SignedWrapKeyRequestDto, services: ServicesDep, caller: CallerDep) -> WrapKeyResponseDto:
    request = body.wrapKeyRequest
    blob = services.key_use.wrap(
        caller, wrapping=KeyRef(request.wrapKeyName, request.wrapKeyPassword, "wrapKeyPassword"),
        target=KeyRef(request.keyToBeWrapped, request.keyToBeWrappedPassword, "keyToBeWrappedPassword"),
        method=str(request.wrapMethod),
    )
    return WrapKeyResponseDto(wrappedKey=encode_base64(blob))


@router.post("/v1/synchronousUnwrap", status_code=status.HTTP_201_CREATED, operation_id="synchronousUnwrap",
             response_model=SignedKeyAttributesDto,
             summary="Unwrap a key into the partition under a new label; answers the new key's attributes")
def synchronous_unwrap(body: SignedSynchronousUnwrapKeyRequestDto, services: ServicesDep,
                       caller: CallerDep) -> SignedKeyAttributesDto:
    request = body.unwrapKeyRequest
    signed = services.key_use.unwrap(
        caller, KeyRef(request.unwrapKeyName, request.unwrapKeyPassword, "unwrapKeyPassword"),
        wrapped=request.wrappedKey, label=request.label, attributes=key_attributes(request.attributes),
        method=str(request.wrapMethod), algorithm=request.algorithm, policy_requested=request.policy is not None,
        approvals=request.signedApprovals,
    )
    return key_response(signed)


# -- HMAC (§5.6) -------------------------------------------------------------------------------


@router.post("/v1/synchronousHmac", operation_id="hmac", response_model=HmacResponseDto,
             summary="HMAC of a payload with an HMACSHA* key")
def synchronous_hmac(body: SignedHmacRequestDto, services: ServicesDep, caller: CallerDep) -> HmacResponseDto:
    request = body.hmacRequest
    mac = services.key_use.hmac(caller, KeyRef(request.keyName, request.keyPassword), request.payload)
    return HmacResponseDto(keyedHash=encode_base64(mac))


@router.post("/v1/verifyHmac", operation_id="verifyHmac", response_model=VerifySignatureResponseDto,
             summary="Check an HMAC (hsmgate's path for the TSB's verifyHmac; /v1/verify accepts it too)")
def verify_hmac(body: SignedVerifyHmacRequestDto, services: ServicesDep,
                caller: CallerDep) -> VerifySignatureResponseDto:
    return _verify_hmac(body.verifyHmacRequest, services, caller)


def _verify_hmac(request: VerifyHmacRequestDto, services: PartitionServices, caller: Caller) -> VerifySignatureResponseDto:
    valid = services.key_use.hmac_verify(caller, KeyRef(request.keyName, request.keyPassword), request.payload,
                                         request.signature)
    return VerifySignatureResponseDto(signatureValid=valid)


def _b64(value: bytes | None) -> str | None:
    return None if value is None else encode_base64(value)
