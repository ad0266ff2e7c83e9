"""Wire DTOs of file encryption (wave-2 reference §3): the JSON parts of the multipart requests
``POST /v1/fileEncrypt`` (part ``SignedFileEncryptRequestDto``) and ``POST /v1/synchronousFileDecrypt``
(part ``SignedFileDecryptRequestDto``); the file travels in the part ``file``, the answer is the raw
file (``application/octet-stream``)."""

from __future__ import annotations

from pydantic import Field

from hsmgate.api.wire.common import Password, WireModel
from hsmgate.api.wire.operations import KeyName
from hsmgate.api.wire.signing import SignatureDto

PASSWORD_EXTENSION_DOC = ("hsmgate extension (the TSB's DTO has none): the key's password, needed when the key "
                          "has one, since every use of a key checks it")


class FileEncryptRequestDto(WireModel):
    encryptKeyName: str = KeyName
    keyPassword: Password = Field(None, description=PASSWORD_EXTENSION_DOC)


class SignedFileEncryptRequestDto(WireModel):
    fileEncryptRequest: FileEncryptRequestDto
    requestSignature: SignatureDto | None = None


class FileDecryptRequestDto(WireModel):
    decryptKeyName: str = KeyName
    keyPassword: Password = None


class SignedFileDecryptRequestDto(WireModel):
    fileDecryptRequest: FileDecryptRequestDto
    requestSignature: SignatureDto | None = None
