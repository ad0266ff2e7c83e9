"""Plain import/export and password change DTOs (reference §3.1, §4.8)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hsmgate.api.wire.common import Base64Bytes, Password, WireModel
from hsmgate.api.wire.keys import AddressFormat


class ImportAttributes(WireModel):
    """``AttributesDto`` of an import: ``decrypt``/``sign``/``unwrap`` may be left out for a public
    key or certificate alone (TSB 1.12.0)."""

    encrypt: bool | None = None
    decrypt: bool | None = None
    verify: bool | None = None
    sign: bool | None = None
    wrap: bool | None = None
    unwrap: bool | None = None
    derive: bool = False
    bip32: bool = False
    slip10: bool = False
    extractable: bool = False
    modifiable: bool = True
    destroyable: bool = False
    sensitive: bool | None = None
    copyable: bool = False


class KeyImportDto(WireModel):
    """Body of ``POST /v1/key/import/plain`` (DER or PEM, base64)."""

    label: str = Field(min_length=1, max_length=256)
    algorithm: str = Field(min_length=1, max_length=64, examples=["RSA", "EC", "ED", "AES"])
    addressFormat: AddressFormat | None = None
    privateKey: Base64Bytes | None = None
    publicKey: Base64Bytes | None = None
    secretKey: Base64Bytes | None = None
    certificate: Base64Bytes | None = None
    attributes: ImportAttributes | None = None
    policy: dict[str, Any] | None = None


class KeyExportDto(BaseModel):
    """``privateKey`` PKCS#8 DER, ``publicKey`` SPKI DER, ``secretKey`` raw; base64; null when absent."""

    privateKey: str | None = None
    publicKey: str | None = None
    secretKey: str | None = None


class ChangeKeyPasswordDto(WireModel):
    label: str = Field(min_length=1, max_length=256)
    password: Password = None
    newPassword: Password = None
