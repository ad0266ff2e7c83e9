"""Tag "Certificate": CSRs, self-signed and CA-issued certificates, import, read, delete (§3.5, §5.7).

Every signature is made by the key inside the backend (``domain/certificates.py``).
"""

from __future__ import annotations

from fastapi import Path, Response

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.operation_route import OperationRoute
from hsmgate.api.routes import download, download_responses, empty, empty_response, tsb_router
from hsmgate.api.wire.certificates import (
    CertificateImportDto,
    CertificateRequestResponseDto,
    CertificateResponseDto,
    SelfSignCertificateRequestDto,
    SynchronousCertificateRequestRequestDto,
    SynchronousSignCertificateRequestDto,
)
from hsmgate.api.wire.common import ERROR_RESPONSES
from hsmgate.domain.certificates import Profile, subject_name
from hsmgate.domain.key_use import KeyRef

router = tsb_router(tags=["Certificate"], responses=ERROR_RESPONSES)
#: the certificate operations that sign with the key: key operations (``api/operation_route.py``)
signing_router = tsb_router(tags=["Certificate"], responses=ERROR_RESPONSES, route_class=OperationRoute)

KeyNamePath = Path(min_length=1, max_length=256, description="The key's label")


def _profile(validity: int, key_usage: list | None, extended_key_usage: list | None,  # type: ignore[type-arg]
             ca: bool = False) -> Profile:
    return Profile(validity, tuple(str(u) for u in key_usage or ()), tuple(str(u) for u in extended_key_usage or ()),
                   ca)


@signing_router.post("/v1/certificate/synchronous/request", operation_id="synchronousCreateCertificateRequest",
             response_model=CertificateRequestResponseDto,
             summary="A PKCS#10 CSR signed by the key (which also gets a self-signed certificate if it has none)")
def certificate_request(body: SynchronousCertificateRequestRequestDto, services: ServicesDep,
                        caller: CallerDep) -> CertificateRequestResponseDto:
    csr = services.key_use.certificate_request(
        caller, KeyRef(body.signKeyName, body.keyPassword), algorithm=str(body.signatureAlgorithm),
        subject=subject_name(body.standardCertificateAttributes.model_dump()),
        profile=_profile(body.validity, body.keyUsage, body.extendedKeyUsage),
    )
    return CertificateRequestResponseDto(label=body.signKeyName, certificateSigningRequest=csr)


@signing_router.post("/v1/certificate/synchronous/request/download",
                     operation_id="synchronousCreateCertificateRequestFileDownload",
                     summary="A PKCS#10 CSR signed by the key, as a file download",
                     **download_responses("The CSR as a PEM file (<key>.csr)", "application/octet-stream"))
def certificate_request_download(body: SynchronousCertificateRequestRequestDto, services: ServicesDep,
                                 caller: CallerDep) -> Response:
    """The JSON twin's CSR (``-----BEGIN NEW CERTIFICATE REQUEST-----``, PEM) as the file's content."""
    csr = certificate_request(body, services, caller).certificateSigningRequest
    return download(csr.encode("ascii"), "application/octet-stream", f"{body.signKeyName}.csr")


@signing_router.post("/v1/certificate/synchronous/selfsign", operation_id="selfSignCertificate",
                     response_model=CertificateResponseDto, summary="A self-signed certificate, attached to the key")
@signing_router.post("/v1/certificate/synchronous/create/selfSigned", operation_id="createSelfSignedCertificate",
                     response_model=CertificateResponseDto, include_in_schema=False)
def self_sign_certificate(body: SelfSignCertificateRequestDto, services: ServicesDep,
                          caller: CallerDep) -> CertificateResponseDto:
    certificate = services.key_use.self_sign(
        caller, KeyRef(body.signKeyName, body.keyPassword), algorithm=str(body.signatureAlgorithm),
        common_name=body.commonName,
        profile=_profile(body.validity, body.keyUsage, body.extendedKeyUsage, body.certificateAuthority),
    )
    return CertificateResponseDto(label=body.signKeyName, certificate=certificate)


@signing_router.post("/v1/certificate/synchronous/sign", operation_id="signCertificate",
                     response_model=CertificateResponseDto,
                     summary="Issue a certificate for a CSR, signed by the key under its certificate (a CA)")
def sign_certificate(body: SynchronousSignCertificateRequestDto, services: ServicesDep,
                     caller: CallerDep) -> CertificateResponseDto:
    certificate = services.key_use.sign_certificate(
        caller, KeyRef(body.signKeyName, body.keyPassword), algorithm=str(body.signatureAlgorithm),
        csr=body.certificateSigningRequest, common_name=body.commonName,
        profile=_profile(body.validity, body.keyUsage, body.extendedKeyUsage, body.certificateAuthority),
    )
    return CertificateResponseDto(label=body.signKeyName, certificate=certificate)


@router.post("/v1/certificate/import/plain", operation_id="importPlainCertificate",
             response_model=CertificateResponseDto,
             summary="Attach a certificate to a key (its public key must be the key's); replaces any other")
def import_certificate(body: CertificateImportDto, services: ServicesDep, caller: CallerDep) -> CertificateResponseDto:
    return CertificateResponseDto(label=body.label,
                                  certificate=services.admin.import_certificate(caller, body.label, body.certificate))


@router.get("/v1/certificate/{keyName}", operation_id="getCertificate", response_model=CertificateResponseDto,
            summary="The certificate of a key (PEM)")
def get_certificate(services: ServicesDep, caller: CallerDep, keyName: str = KeyNamePath) -> CertificateResponseDto:
    return CertificateResponseDto(label=keyName, certificate=services.admin.certificate(caller, keyName))


@router.delete("/v1/certificate/{keyName}", operation_id="deleteCertificate",
               summary="Remove the certificate of a key (the key stays)", **empty_response())
def delete_certificate(services: ServicesDep, caller: CallerDep, keyName: str = KeyNamePath) -> Response:
    services.admin.delete_certificate(caller, keyName)
    return empty()
