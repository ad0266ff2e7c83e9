"""Tag "Keys": create, list, describe and delete keys, their attestation bundle (reference §3.1, §4;
wave-2 §5.1)."""

from __future__ import annotations

import base64
import io
import zipfile

from fastapi import Path, Response, status
from pydantic import BaseModel, Field

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.operation_route import OperationRoute
from hsmgate.api.routes import download, download_responses, empty, empty_response, safe_file_name, tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES, encode_base64
from hsmgate.api.wire.derivation import DeriveKeyAttributes, DeriveKeyDto, ImportSeedDto
from hsmgate.api.wire.key_transfer import ChangeKeyPasswordDto, ImportAttributes, KeyExportDto, KeyImportDto
from hsmgate.api.wire.keys import (
    CreateKeyAttributes,
    CreateKeyDto,
    KeyAttributesOut,
    KeyCapabilitiesDto,
    KeyJson,
    KeyLabelWithPasswordDto,
    SignedKeyAttributesDto,
)
from hsmgate.domain.attestation import iso_z
from hsmgate.domain.gateway import PartitionServices
from hsmgate.domain.key_admin import AttestationBundle
from hsmgate.domain.key_capabilities import KeyCapabilities
from hsmgate.domain.key_transfer import KeyImport
from hsmgate.domain.key_use import Caller, KeyRef
from hsmgate.domain.keys import (
    DeriveRequest,
    KeyAddress,
    KeyAttributes,
    NewKey,
    SeedImport,
    SignedKey,
    requested_attributes,
)
from hsmgate.domain.ska.policy import Policy

router = tsb_router(tags=["Keys"], responses=ERROR_RESPONSES)
#: export hands key material out: a key operation (``api/operation_route.py``)
export_router = tsb_router(tags=["Keys"], responses=ERROR_RESPONSES, route_class=OperationRoute)

KeyNamePath = Path(min_length=1, max_length=256, description="The key's label")
KeyNameOrPath = Path(min_length=1, max_length=640,
                     description="The key's label, or <master>/<derivation path> for a derived key")


def key_response(signed: SignedKey) -> SignedKeyAttributesDto:
    view = signed.view
    a = view.attributes
    return SignedKeyAttributesDto(
        xml=signed.xml,
        json=KeyJson(
            label=view.label, id=view.key_id, algorithm=view.algorithm, algorithmOid=view.algorithm_oid,
            curveOid=view.curve_oid, derivedAttributes=view.derivation, extendedPublicKey=view.extended_public_key,
            remainingSignatures=None if view.one_time_keys is None else view.one_time_keys[1] - view.one_time_keys[0],
            maxSignatures=None if view.one_time_keys is None else view.one_time_keys[1],
            keySize=view.key_size, createTime=iso_z(view.create_time),
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


def key_attributes(attrs: CreateKeyAttributes | ImportAttributes | DeriveKeyAttributes, *,
                   public_only: bool = False, derivation: bool = False) -> KeyAttributes:
    """Domain attributes of an ``AttributesDto`` (the defaults are domain rules:
    :func:`hsmgate.domain.keys.requested_attributes`; ``derivation``: bip32/slip10 may be set)."""
    return requested_attributes(attrs.model_dump(), public_only=public_only, derivation=derivation)


@router.post("/v1/key", status_code=status.HTTP_201_CREATED, operation_id="createKey",
             response_model=SignedKeyAttributesDto, summary="Create a key in the partition")
def create_key(body: CreateKeyDto, services: ServicesDep, caller: CallerDep) -> SignedKeyAttributesDto:
    policy = None if body.policy is None else Policy.from_wire(body.policy)  # an SKA key
    signed = services.admin.create(caller, NewKey(
        label=body.label, algorithm=str(body.algorithm) if body.algorithm else None,
        algorithm_oid=body.algorithmOid, key_size=body.keySize, curve_oid=body.curveOid,
        attributes=key_attributes(body.attributes, derivation=True), key_id=body.id, policy=policy,
        address_format=body.addressFormat.format if body.addressFormat is not None else None,
        bip32=body.attributes.bip32, slip10=body.attributes.slip10,
    ), body.password)
    return key_response(signed)


@router.post("/v1/importedKey", status_code=status.HTTP_201_CREATED, operation_id="importKey", response_model=SignedKeyAttributesDto,
             summary="Import a BIP-32 / SLIP-10 seed as a derivation master key")
def import_seed(body: ImportSeedDto, services: ServicesDep, caller: CallerDep) -> SignedKeyAttributesDto:
    policy = None if body.policy is None else Policy.from_wire(body.policy)
    signed = services.admin.import_seed(caller, SeedImport(
        label=body.label, seed=body.seed, curve_oid=body.curveOid, algorithm=body.algorithm,
        attributes=key_attributes(body.attributes, derivation=True), bip32=body.attributes.bip32,
        slip10=body.attributes.slip10, policy=policy,
        address_format=body.addressFormat.format if body.addressFormat is not None else None,
    ), body.password)
    return key_response(signed)


@router.post("/v1/derivedKey", status_code=status.HTTP_201_CREATED, operation_id="deriveKey", response_model=SignedKeyAttributesDto,
             summary="Derive and store the child of a master key as <master>/<path>")
def derive_key(body: DeriveKeyDto, services: ServicesDep, caller: CallerDep) -> SignedKeyAttributesDto:
    signed = services.admin.derive(caller, KeyRef(body.masterKeyLabel, body.masterKeyPassword, "masterKeyPassword"),
                                   DeriveRequest(master=body.masterKeyLabel, path=body.derivationPath,
                                                 attributes=key_attributes(body.attributes)
                                                 if body.attributes is not None else None))
    return key_response(signed)


@router.get("/v1/key", operation_id="getKeys", response_model=list[str], summary="List the labels of all keys")
def list_keys(services: ServicesDep, caller: CallerDep) -> list[str]:
    return services.admin.labels(caller)


@router.post("/v1/key/attributes", operation_id="getKeyAttributesWithKeyPassword",
             response_model=SignedKeyAttributesDto, summary="Attributes of a key, signed by the attestation key")
def key_attributes_with_password(body: KeyLabelWithPasswordDto, services: ServicesDep,
                                 caller: CallerDep) -> SignedKeyAttributesDto:
    return key_response(services.admin.describe(caller, KeyRef(body.label, body.password, "password")))


def capabilities_response(found: KeyCapabilities) -> KeyCapabilitiesDto:
    return KeyCapabilitiesDto(label=found.label, backend=found.backend,
                              signatureAlgorithms=list(found.signature_algorithms),
                              cipherAlgorithms=list(found.cipher_algorithms), wrapMethods=list(found.wrap_methods),
                              hmac=found.hmac, decapsulate=found.decapsulate)


@router.post("/v1/key/capabilities", operation_id="getKeyCapabilitiesWithKeyPassword",
             response_model=KeyCapabilitiesDto,
             summary="What a key can do on its token: algorithms, cipher and wrap methods (hsmgate)")
def key_capabilities_with_password(body: KeyLabelWithPasswordDto, services: ServicesDep,
                                   caller: CallerDep) -> KeyCapabilitiesDto:
    return capabilities_response(services.admin.capabilities(caller, KeyRef(body.label, body.password, "password")))


@router.get("/v1/key/{keyName:path}/capabilities", operation_id="getKeyCapabilities",
            response_model=KeyCapabilitiesDto,
            summary="What a key (without password) can do on its token (hsmgate)")
def key_capabilities_by_path(services: ServicesDep, caller: CallerDep,
                             keyName: str = KeyNameOrPath) -> KeyCapabilitiesDto:
    return capabilities_response(services.admin.capabilities(caller, KeyRef(keyName, None, "password")))


#: Name of the certificate chain in the bundle, as the TSB names it (reference §3.1) so that scripts
#: written for the TSB find it; the README is hsmgate's own.
ATTESTATION_CHAIN_FILE = "PrimusHSM_Attestation.crt"
ATTESTATION_README_FILE = "README_hsmgate_attestation.md"
_ATTESTATION_README = """# Attestation of key `{label}`

Made by hsmgate. `{name}.xml` is the key's attribute document, `{name}.sig` its RSASSA-PKCS1-v1_5 /
SHA-256 signature by the partition's attestation key `{attestation_key}`, `{name}.pem` that key's public
key and `{chain}` its certificate. hsmgate's attestation key is not certified by an HSM vendor: its
certificate is self-signed (made by hsmgate at start-up), so trust it only as far as you trust this
deployment, e.g. by comparing it with `GET /v1/certificate/{attestation_key}`.

Check, in this directory:

    openssl verify -CAfile {chain} {chain}
    openssl x509 -in {chain} -noout -pubkey -out chain-pubkey.pem
    openssl dgst -sha256 -verify chain-pubkey.pem -signature {name}.sig {name}.xml
    openssl dgst -sha256 -verify {name}.pem -signature {name}.sig {name}.xml

Then compare `<public_key>` in `{name}.xml` with the key you expect (e.g. a CSR's), and check
`<extractable>false</extractable>` and `<never_extractable>true</never_extractable>`.
"""


def attestation_zip(bundle: AttestationBundle) -> bytes:
    """The zip of ``POST /v1/key/keyAttestation``: ``<key>.xml``, ``<key>.sig`` (raw signature bytes),
    ``<key>.pem`` (the attestation key's public key), the certificate chain and a README."""
    signed = bundle.key
    name = safe_file_name(signed.view.label)
    readme = _ATTESTATION_README.format(label=signed.view.label, name=name, chain=ATTESTATION_CHAIN_FILE,
                                        attestation_key=signed.attestation_key_name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.xml", signed.xml.encode("utf-8"))
        archive.writestr(f"{name}.sig", base64.b64decode(signed.xml_signature))
        archive.writestr(f"{name}.pem", bundle.attestation_public_key_pem)
        archive.writestr(ATTESTATION_CHAIN_FILE, bundle.certificate_chain_pem)
        archive.writestr(ATTESTATION_README_FILE, readme.encode("utf-8"))
    return out.getvalue()


@router.post("/v1/key/keyAttestation", operation_id="getKeyAttestationAsFileDownload",
             summary="The key's attestation as a zip file download",
             **download_responses("A zip: the key's attestation XML, its signature, the attestation key's public "
                                  "key and certificate, a README", "application/zip"))
def key_attestation(body: KeyLabelWithPasswordDto, services: ServicesDep, caller: CallerDep) -> Response:
    bundle = services.admin.attestation_bundle(caller, KeyRef(body.label, body.password, "password"))
    return download(attestation_zip(bundle), "application/zip", f"{body.label}-attestation.zip")


@router.get("/v1/key/{keyName:path}/attributes", operation_id="getKeyAttributes", deprecated=True,
            response_model=SignedKeyAttributesDto, summary="Attributes of a key (deprecated form)")
def key_attributes_by_path(services: ServicesDep, caller: CallerDep,
                           keyName: str = KeyNameOrPath) -> SignedKeyAttributesDto:
    return key_response(services.admin.describe(caller, KeyRef(keyName, None, "password")))


@router.delete("/v1/key/{keyName}", operation_id="deleteKey", summary="Delete a destroyable key",
               **empty_response("Deleted; the answer has an empty body"))
def delete_key(services: ServicesDep, caller: CallerDep, keyName: str = KeyNamePath) -> Response:
    services.admin.delete(caller, KeyRef(keyName, None, "password"))
    return empty()


@router.post("/v1/key/deleteKey", operation_id="deleteKeyWithPassword", summary="Delete a destroyable key",
             **empty_response("Deleted; the answer has an empty body"))
def delete_key_with_password(body: KeyLabelWithPasswordDto, services: ServicesDep, caller: CallerDep) -> Response:
    services.admin.delete(caller, KeyRef(body.label, body.password, "password"))
    return empty()


@router.post("/v1/key/import/plain", operation_id="importPlainKey", response_model=SignedKeyAttributesDto,
             summary="Import a private, public or secret key, or a certificate (DER or PEM, base64)")
def import_plain_key(body: KeyImportDto, services: ServicesDep, caller: CallerDep) -> SignedKeyAttributesDto:
    public_only = not body.privateKey and not body.secretKey
    signed = services.admin.import_plain(caller, KeyImport(
        label=body.label, algorithm=body.algorithm, private_key=body.privateKey, public_key=body.publicKey,
        secret_key=body.secretKey, certificate=body.certificate,
        attributes=key_attributes(body.attributes, public_only=public_only) if body.attributes else None,
        policy_requested=body.policy is not None, address_format_requested=body.addressFormat is not None,
    ))
    return key_response(signed)


@export_router.post("/v1/key/export/plain", operation_id="exportPlainKey", response_model=KeyExportDto,
                    summary="Export an extractable, non-sensitive key")
def export_plain_key(body: KeyLabelWithPasswordDto, services: ServicesDep, caller: CallerDep) -> KeyExportDto:
    return _export(services, caller, KeyRef(body.label, body.password, "password"))


def _export(services: PartitionServices, caller: Caller, key: KeyRef) -> KeyExportDto:
    exported = services.key_use.export(caller, key)
    return KeyExportDto(
        privateKey=encode_base64(exported.private_key) if exported.private_key is not None else None,
        publicKey=encode_base64(exported.public_key) if exported.public_key is not None else None,
        secretKey=encode_base64(exported.secret_key) if exported.secret_key is not None else None,
    )


@export_router.get("/v1/key/{keyName}/export/plain", operation_id="exportPlainKeyByName", deprecated=True,
                   response_model=KeyExportDto,
                   summary="Export an extractable, non-sensitive key without password (deprecated form)")
def export_plain_key_by_name(services: ServicesDep, caller: CallerDep, keyName: str = KeyNamePath) -> KeyExportDto:
    return _export(services, caller, KeyRef(keyName, None, "password"))  # the gate checks the name (610)


@router.patch("/v1/key/changeAttributes", operation_id="changeAttributes",
              summary="Refused (611): the request body of this TSB endpoint is not public",
              **empty_response("Never: every call is refused with 611"))
def change_attributes(services: ServicesDep, caller: CallerDep) -> Response:
    """Always 611 (``KeyAdministration.change_attributes``); the body is not read."""
    services.admin.change_attributes(caller)
    return empty()


@router.post("/v1/key/changePassword", operation_id="changeKeyPassword",
             summary="Change (or with an empty newPassword remove) the password of a modifiable key",
             **empty_response())
def change_key_password(body: ChangeKeyPasswordDto, services: ServicesDep, caller: CallerDep) -> Response:
    services.admin.change_password(caller, body.label, body.password, body.newPassword)
    return empty()


class KeyAddressDto(BaseModel):
    address: str = Field(description="base64 of the address hash (ETH: 20 bytes of Keccak-256; BTC: HASH160)")
    #: hsmgate extensions: the format and the full address (BTC: bech32 P2WPKH; ETH: EIP-55)
    format: str | None = None
    addressText: str | None = Field(None, examples=["bc1q0xcqpzrky6eff2g52qdye53xkk9jxkvrh6yhyw"])


def address_response(address: KeyAddress) -> KeyAddressDto:
    return KeyAddressDto(address=encode_base64(address.hash), format=address.format, addressText=address.text)


@router.post("/v1/key/address", operation_id="getKeyAddressWithKeyPassword", response_model=KeyAddressDto,
             summary="Blockchain address hash of an SKA key created with addressFormat")
def key_address(body: KeyLabelWithPasswordDto, services: ServicesDep, caller: CallerDep) -> KeyAddressDto:
    return address_response(services.admin.address(caller, KeyRef(body.label, body.password, "password")))


@router.get("/v1/key/{keyName:path}/address", operation_id="getKeyAddress", deprecated=True,
            response_model=KeyAddressDto, summary="Blockchain address of an SKA key without password (deprecated form)")
def key_address_by_name(services: ServicesDep, caller: CallerDep, keyName: str = KeyNameOrPath) -> KeyAddressDto:
    return address_response(services.admin.address(caller, KeyRef(keyName, None, "password")))
