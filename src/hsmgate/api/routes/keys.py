"""Tag "Keys": create, list, describe and delete keys (reference §3.1, §4)."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from hsmgate.api.deps import ServicesDep
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.keys import (
    CreateKeyDto,
    KeyAttributesOut,
    KeyJson,
    KeyLabelWithPasswordDto,
    SignedKeyAttributesDto,
)
from hsmgate.domain import errors
from hsmgate.domain.attestation import iso_z
from hsmgate.domain.keys import NewKey, SignedKey
from hsmgate.hsm.base import KeyAttributes

router = APIRouter(tags=["Keys"], responses=ERROR_RESPONSES)

KeyNamePath = Path(min_length=1, max_length=256, description="The key's label")


def key_response(signed: SignedKey) -> SignedKeyAttributesDto:
    view = signed.view
    a = view.attributes
    return SignedKeyAttributesDto(
        xml=signed.xml,
        json=KeyJson(
            label=view.label, id=view.key_id, algorithm=view.algorithm, algorithmOid=view.algorithm_oid,
            curveOid=view.curve_oid, keySize=view.key_size, createTime=iso_z(view.create_time),
            attestTime=iso_z(view.attest_time),
            publicKey=encode_base64(view.public_key) if view.public_key is not None else None,
            attributes=KeyAttributesOut(
                decrypt=a.decrypt, sign=a.sign, unwrap=a.unwrap, derive=a.derive, sensitive=a.sensitive,
                alwaysSensitive=a.always_sensitive, extractable=a.extractable,
                neverExtractable=a.never_extractable, modifiable=a.modifiable, copyable=a.copyable,
                destroyable=a.destroyable,
            ),
        ),
        xmlSignature=signed.xml_signature,
        attestationKeyName=signed.attestation_key_name,
    )


def _refuse_password(password: str | None, field: str) -> None:
    if password:
        raise errors.UnsupportedOperation(f"'{field}': key passwords are not supported by this hsmgate version")


@router.post("/v1/key", status_code=status.HTTP_201_CREATED, operation_id="createKey",
             response_model=SignedKeyAttributesDto, summary="Create a key in the partition")
def create_key(body: CreateKeyDto, services: ServicesDep) -> SignedKeyAttributesDto:
    _refuse_password(body.password, "password")
    if body.policy is not None:
        raise errors.UnsupportedOperation("'policy': Smart Key Attributes are not supported by this hsmgate version")
    if body.addressFormat is not None:
        raise errors.InvalidAddressOnNonSkaKey("'addressFormat' is only allowed on keys with a policy (SKA keys)")
    attrs = body.attributes
    if attrs.bip32 or attrs.slip10:
        raise errors.TsbError("'attributes.bip32'/'attributes.slip10': key derivation is not supported", code=634)
    attributes = KeyAttributes(
        decrypt=attrs.decrypt, sign=attrs.sign, unwrap=attrs.unwrap, derive=attrs.derive,
        encrypt=bool(attrs.encrypt), verify=bool(attrs.verify), wrap=bool(attrs.wrap),
        sensitive=True if attrs.sensitive is None else attrs.sensitive, extractable=attrs.extractable,
        modifiable=attrs.modifiable, destroyable=attrs.destroyable, copyable=attrs.copyable,
    )
    signed = services.keys.create(NewKey(
        label=body.label, algorithm=str(body.algorithm) if body.algorithm else None,
        algorithm_oid=body.algorithmOid, key_size=body.keySize, curve_oid=body.curveOid,
        attributes=attributes, key_id=body.id,
    ))
    return key_response(signed)


@router.get("/v1/key", operation_id="getKeys", response_model=list[str], summary="List the labels of all keys")
def list_keys(services: ServicesDep) -> list[str]:
    return services.keys.labels()


@router.post("/v1/key/attributes", operation_id="getKeyAttributesWithKeyPassword",
             response_model=SignedKeyAttributesDto, summary="Attributes of a key, signed by the attestation key")
def key_attributes(body: KeyLabelWithPasswordDto, services: ServicesDep) -> SignedKeyAttributesDto:
    _refuse_password(body.password, "password")
    return key_response(services.keys.describe(body.label))


@router.get("/v1/key/{keyName}/attributes", operation_id="getKeyAttributes", deprecated=True,
            response_model=SignedKeyAttributesDto, summary="Attributes of a key (deprecated form)")
def key_attributes_by_path(services: ServicesDep, keyName: str = KeyNamePath) -> SignedKeyAttributesDto:
    return key_response(services.keys.describe(keyName))


@router.delete("/v1/key/{keyName}", operation_id="deleteKey", summary="Delete a destroyable key")
def delete_key(services: ServicesDep, keyName: str = KeyNamePath) -> None:
    services.keys.delete(keyName)


@router.post("/v1/key/deleteKey", operation_id="deleteKeyWithPassword", summary="Delete a destroyable key")
def delete_key_with_password(body: KeyLabelWithPasswordDto, services: ServicesDep) -> None:
    _refuse_password(body.password, "password")
    services.keys.delete(body.label)
