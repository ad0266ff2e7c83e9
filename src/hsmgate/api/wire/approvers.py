"""Wire DTOs of approver management (wave-2 §2.3): ``ApproverCreateDto``, ``ApproverOnboardDto`` …

Names and shapes are the TSB's; passwords and codes are ``char[]`` (an array of one-character
strings, or a string). docs/approvers.md gives the byte format of the onboarding payload.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from hsmgate.api.wire.common import Password, WireModel


class ApproverCreateDto(WireModel):
    approverName: str = Field(max_length=256, description="The approver's name, e.g. an e-mail address")
    algorithm: str = Field(description="Only RSA", examples=["RSA"])
    keySize: int | None = Field(None, description="2048 (default), 3072 or 4096")
    backupPassword: Password = Field(None, description="Protects the approver's PKCS#12 (kept by no one but the approver)")
    validity: int | None = Field(None, description="Days the self-signed certificate is valid (default 3650)")


class OneTimeCodeDto(BaseModel):
    """``ApproverCreateResponseDto`` / ``ApproverRenewOneTimePasswordResponseDto``."""

    oneTimeCode: str = Field(description="Single use; expires after HSMGATE_APPROVER_ONE_TIME_CODE_TTL seconds")


class ApproverOnboardDto(WireModel):
    approverName: str = Field(max_length=256)
    oneTimeCode: Password = None
    transportPassword: Password = Field(
        None, description="The AES-GCM key as its characters: 16 or 32 bytes in UTF-8 (AES-128 / AES-256)")


class ApproverOnboardResponseDto(BaseModel):
    encryptedPayload: str = Field(description="base64 of the AES-GCM ciphertext of the PKCS#12 followed by the "
                                              "16-byte tag")
    initializationVector: str = Field(description="base64 of the 12-byte IV")


class ApproverNameDto(WireModel):
    """``ApproverRestoreWithPasswordKnownDto`` / ``ApproverRenewOneTimePasswordDto``."""

    approverName: str = Field(max_length=256)


class ApproverRestoreWithPasswordUnknownDto(WireModel):
    approverName: str = Field(max_length=256)
    newBackupPassword: Password = None


class UnwrapRequestIdDto(BaseModel):
    unwrapRequestId: str


class ApproverOnboardingCertificateDto(BaseModel):
    approverName: str
    approverCertificate: str = Field(description="base64 of the approver's DER X.509 certificate")


class ApproverOnboardingStatusResponseDto(BaseModel):
    onboarded: list[ApproverOnboardingCertificateDto]
    pending: list[ApproverOnboardingCertificateDto]
