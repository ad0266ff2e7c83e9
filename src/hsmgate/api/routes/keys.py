"""Tag "Keys": create, list, describe and delete keys (reference §3.1, §4)."""

from __future__ import annotations

from fastapi import Path, Response, status
from pydantic import BaseModel, Field

from hsmgate.api.deps import ServicesDep
from hsmgate.api.operations_deps import KeyTransferDep
from hsmgate.api.routes import empty, empty_response, tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.key_transfer import ChangeKeyPasswordDto, ImportAttributes, KeyExportDto, KeyImportDto
from hsmgate.api.wire.keys import (
    CreateKeyAttributes,
    CreateKeyDto,
    KeyAttributesOut,
    KeyJson,
    KeyLabelWithPasswordDto,
    SignedKeyAttributesDto,
)
from hsmgate.domain import errors
from hsmgate.domain.attestation import iso_z
from hsmgate.domain.key_transfer import KeyImport
from hsmgate.domain.keys import NewKey, SignedKey
from hsmgate.domain.policy import Policy
from hsmgate.hsm.base import KeyAttributes

router = tsb_router(tags=["Keys"], responses=ERROR_RESPONSES)

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
            addressTruncated=None if view.address_truncated is None else
            {"address": view.address_truncated[0], "format": view.address_truncated[1]},
            policy=None if view.policy is None else view.policy.to_wire(),
        ),
        xmlSignature=signed.xml_signature,
        attestationKeyName=signed.attestation_key_name,
    )


def key_attributes(attrs: CreateKeyAttributes | ImportAttributes, *, public_only: bool = False) -> KeyAttributes:
    """Domain attributes of an ``AttributesDto``. ``encrypt``, ``verify`` and ``wrap`` (absent from
    key responses) default to their counterparts ``decrypt``, ``sign`` and ``unwrap`` — a key made
    to decrypt may encrypt — and, for a public key alone, to true."""
    if attrs.bip32 or attrs.slip10:
        raise errors.TsbError("'attributes.bip32'/'attributes.slip10': key derivation is not supported", code=634)
    decrypt, sign, unwrap = bool(attrs.decrypt), bool(attrs.sign), bool(attrs.unwrap)

    def default(value: bool | None, counterpart: bool) -> bool:
        return (True if public_only else counterpart) if value is None else value

    return KeyAttributes(
        decrypt=decrypt and not public_only, sign=sign and not public_only, unwrap=unwrap and not public_only,
        derive=attrs.derive, encrypt=default(attrs.encrypt, decrypt), verify=default(attrs.verify, sign),
        wrap=default(attrs.wrap, unwrap), sensitive=True if attrs.sensitive is None else attrs.sensitive,
        extractable=attrs.extractable, modifiable=attrs.modifiable, destroyable=attrs.destroyable,
        copyable=attrs.copyable,
    )


@router.post("/v1/key", status_code=status.HTTP_201_CREATED, operation_id="createKey",
             response_model=SignedKeyAttributesDto, summary="Create a key in the partition")
def create_key(body: CreateKeyDto, services: ServicesDep) -> SignedKeyAttributesDto:
    policy = None if body.policy is None else Policy.from_wire(body.policy)  # SKA key (issue 5)
    if body.addressFormat is not None and policy is None:
        raise errors.InvalidAddressOnNonSkaKey("'addressFormat' is only allowed on keys with a policy (SKA keys)")
    attributes = key_attributes(body.attributes)
    with services.passwords.protecting_new_key(body.label, body.password):
        signed = services.keys.create(NewKey(
            label=body.label, algorithm=str(body.algorithm) if body.algorithm else None,
            algorithm_oid=body.algorithmOid, key_size=body.keySize, curve_oid=body.curveOid,
            attributes=attributes, key_id=body.id, policy=policy,
            address_format=body.addressFormat.format if body.addressFormat is not None else None,
        ))
    return key_response(signed)


@router.get("/v1/key", operation_id="getKeys", response_model=list[str], summary="List the labels of all keys")
def list_keys(services: ServicesDep) -> list[str]:
    return services.keys.labels()


@router.post("/v1/key/attributes", operation_id="getKeyAttributesWithKeyPassword",
             response_model=SignedKeyAttributesDto, summary="Attributes of a key, signed by the attestation key")
def key_attributes_with_password(body: KeyLabelWithPasswordDto, services: ServicesDep) -> SignedKeyAttributesDto:
    services.passwords.check(body.label, body.password, field="password")
    return key_response(services.keys.describe(body.label))


@router.get("/v1/key/{keyName}/attributes", operation_id="getKeyAttributes", deprecated=True,
            response_model=SignedKeyAttributesDto, summary="Attributes of a key (deprecated form)")
def key_attributes_by_path(services: ServicesDep, keyName: str = KeyNamePath) -> SignedKeyAttributesDto:
    services.passwords.check(keyName, None, field="password")
    return key_response(services.keys.describe(keyName))


@router.delete("/v1/key/{keyName}", operation_id="deleteKey", summary="Delete a destroyable key",
               **empty_response("Deleted; the answer has an empty body"))
def delete_key(services: ServicesDep, keyName: str = KeyNamePath) -> Response:
    services.passwords.check(keyName, None, field="password")
    services.keys.delete(keyName)
    services.stores.certificates.remove(keyName)
    return empty()


@router.post("/v1/key/deleteKey", operation_id="deleteKeyWithPassword", summary="Delete a destroyable key",
             **empty_response("Deleted; the answer has an empty body"))
def delete_key_with_password(body: KeyLabelWithPasswordDto, services: ServicesDep) -> Response:
    services.passwords.check(body.label, body.password, field="password")
    services.keys.delete(body.label)
    services.stores.certificates.remove(body.label)
    return empty()


@router.post("/v1/key/import/plain", operation_id="importPlainKey", response_model=SignedKeyAttributesDto,
             summary="Import a private, public or secret key, or a certificate (DER or PEM, base64)")
def import_plain_key(body: KeyImportDto, services: ServicesDep, transfer: KeyTransferDep) -> SignedKeyAttributesDto:
    if body.policy is not None:
        raise errors.UnsupportedOperation("'policy': Smart Key Attributes are not supported on imported keys")
    if body.addressFormat is not None:
        raise errors.InvalidAddressOnNonSkaKey("'addressFormat' is only allowed on keys with a policy (SKA keys)")
    public_only = not body.privateKey and not body.secretKey
    signed = transfer.import_plain(KeyImport(
        label=body.label, algorithm=body.algorithm, private_key=body.privateKey, public_key=body.publicKey,
        secret_key=body.secretKey, certificate=body.certificate,
        attributes=key_attributes(body.attributes, public_only=public_only) if body.attributes else None,
    ))
    return key_response(signed)


@router.post("/v1/key/export/plain", operation_id="exportPlainKey", response_model=KeyExportDto,
             summary="Export an extractable, non-sensitive key")
def export_plain_key(body: KeyLabelWithPasswordDto, transfer: KeyTransferDep) -> KeyExportDto:
    exported = transfer.export_plain(body.label, body.password)
    return KeyExportDto(
        privateKey=encode_base64(exported.private_key) if exported.private_key is not None else None,
        publicKey=encode_base64(exported.public_key) if exported.public_key is not None else None,
        secretKey=encode_base64(exported.secret_key) if exported.secret_key is not None else None,
    )


@router.post("/v1/key/changePassword", operation_id="changeKeyPassword",
             summary="Change (or with an empty newPassword remove) the password of a modifiable key",
             **empty_response())
def change_key_password(body: ChangeKeyPasswordDto, services: ServicesDep) -> Response:
    services.passwords.change(body.label, body.password, body.newPassword)
    return empty()


class KeyAddressDto(BaseModel):
    address: str = Field(description="base64 of the address hash (ETH: 20 bytes of Keccak-256; BTC: HASH160)")


@router.post("/v1/key/address", operation_id="getKeyAddressWithKeyPassword", response_model=KeyAddressDto,
             summary="Blockchain address hash of an SKA key created with addressFormat")
def key_address(body: KeyLabelWithPasswordDto, services: ServicesDep) -> KeyAddressDto:
    services.passwords.check(body.label, body.password, field="password")
    ska = getattr(services, "ska", None)
    if ska is None:
        raise errors.UnsupportedOperation("Smart Key Attributes are not available on this partition")
    return KeyAddressDto(address=encode_base64(ska.requests.keys.address(body.label)))
