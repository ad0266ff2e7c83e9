"""Certificate DTOs (reference §3.5, §5.7)."""

from __future__ import annotations

import enum

from pydantic import AliasChoices, BaseModel, Field

from hsmgate.api.wire.common import Base64Bytes, Password, WireModel
from hsmgate.domain.algorithms import CERTIFICATE_SIGNATURE_ALGORITHMS
from hsmgate.domain.certificates import EXTENDED_KEY_USAGES, KEY_USAGES

CertificateSignatureAlgorithm = enum.StrEnum(  # type: ignore[misc]
    "KeytoolSignatureAlgorithm", {name: name for name in CERTIFICATE_SIGNATURE_ALGORITHMS}
)
KeyUsageName = enum.StrEnum("KeyUsage", {name: name for name in KEY_USAGES})  # type: ignore[misc]
ExtendedKeyUsageName = enum.StrEnum("ExtendedKeyUsage", {name: name for name in EXTENDED_KEY_USAGES})  # type: ignore[misc]
KeyName = Field(min_length=1, max_length=256)
Validity = Field(365, description="Days from now after which the certificate is not valid", examples=[365])
CertificateAuthority = Field(False, validation_alias=AliasChoices("certificateAuthority", "isCertificateAuthority"),
                             description="True: basicConstraints CA:TRUE (JSON name of Lombok's isCertificateAuthority)")


class CertificateAttributesDto(WireModel):
    """``standardCertificateAttributes``: the X.500 subject."""

    commonName: str = Field(min_length=1, max_length=256)
    country: str | None = Field(None, max_length=2)
    stateOrProvinceName: str | None = Field(None, max_length=128)
    locality: str | None = Field(None, max_length=128)
    organizationName: str | None = Field(None, max_length=64)
    organizationIdentifier: str | None = Field(None, max_length=64)
    organizationUnitName: str | None = Field(None, max_length=64)
    email: str | None = Field(None, max_length=255)
    title: str | None = Field(None, max_length=64)
    surname: str | None = Field(None, max_length=64)
    givenName: str | None = Field(None, max_length=64)
    initials: str | None = Field(None, max_length=64)
    pseudonym: str | None = Field(None, max_length=128)
    generationQualifier: str | None = Field(None, max_length=64)


class SynchronousCertificateRequestRequestDto(WireModel):
    signKeyName: str = KeyName
    keyPassword: Password = None
    signatureAlgorithm: CertificateSignatureAlgorithm  # type: ignore[valid-type]
    validity: int = Validity
    standardCertificateAttributes: CertificateAttributesDto
    keyUsage: list[KeyUsageName] | None = None  # type: ignore[valid-type]
    extendedKeyUsage: list[ExtendedKeyUsageName] | None = None  # type: ignore[valid-type]


class CertificateRequestResponseDto(BaseModel):
    label: str
    certificateSigningRequest: str


class SelfSignCertificateRequestDto(WireModel):
    signKeyName: str = KeyName
    keyPassword: Password = None
    validity: int = Validity
    signatureAlgorithm: CertificateSignatureAlgorithm  # type: ignore[valid-type]
    commonName: str = Field(min_length=1, max_length=256)
    certificateAuthority: bool = CertificateAuthority
    keyUsage: list[KeyUsageName] | None = None  # type: ignore[valid-type]
    extendedKeyUsage: list[ExtendedKeyUsageName] | None = None  # type: ignore[valid-type]


class SynchronousSignCertificateRequestDto(WireModel):
    signKeyName: str = KeyName
    keyPassword: Password = None
    validity: int = Validity
    signatureAlgorithm: CertificateSignatureAlgorithm  # type: ignore[valid-type]
    commonName: str | None = Field(None, max_length=256,
                                   description="Subject CN of the certificate (default: the CSR's)")
    certificateAuthority: bool = CertificateAuthority
    certificateSigningRequest: str = Field(min_length=1, max_length=65536, description="PEM or base64 DER")
    keyUsage: list[KeyUsageName] | None = None  # type: ignore[valid-type]
    extendedKeyUsage: list[ExtendedKeyUsageName] | None = None  # type: ignore[valid-type]


class CertificateImportDto(WireModel):
    label: str = KeyName
    certificate: Base64Bytes = Field(description="base64 DER (PEM armour is accepted)")


class CertificateResponseDto(BaseModel):
    """``label`` and the certificate as PEM."""

    label: str
    certificate: str
