"""File encryption (wave-2 reference §3): ``POST /v1/fileEncrypt`` and ``POST /v1/synchronousFileDecrypt``.

Multipart requests (a JSON part named like its DTO, and the part ``file``) answered with the raw file,
streamed with its exact ``Content-Length``, so a client can show progress. The container is
hsmgate's own (``docs/file-encryption.md``); :class:`OperationRoute` authenticates before the body
is read and spools the file part to an anonymous temporary file.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Body, UploadFile
from fastapi.responses import StreamingResponse

from hsmgate.api.deps import CallerDep, ServicesDep
from hsmgate.api.operation_route import OperationRoute
from hsmgate.api.routes import tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES
from hsmgate.api.wire.file_encryption import SignedFileDecryptRequestDto, SignedFileEncryptRequestDto
from hsmgate.domain.file_encryption import StreamedFile
from hsmgate.domain.key_use import KeyRef

router = tsb_router(route_class=OperationRoute, tags=["Synchronous Key Operations"], responses=ERROR_RESPONSES)

#: The suffix of an encrypted file's name (the TSB's documentation names its output ``*.primus.encrypted``).
SUFFIX = ".encrypted"
_FILE_RESPONSE = {200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                        "description": "the file, with its exact Content-Length"}}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@router.post("/v1/fileEncrypt", operation_id="fileEncrypt", response_class=StreamingResponse,
             responses=_FILE_RESPONSE,
             summary="Encrypt a file to an EC P-384 key with derive (ECIES container, version 1)")
def file_encrypt(body: Annotated[SignedFileEncryptRequestDto, Body(alias="SignedFileEncryptRequestDto")],
                 file: UploadFile, services: ServicesDep, caller: CallerDep) -> StreamingResponse:
    request = body.fileEncryptRequest
    sealed = services.key_use.file_encrypt(caller, KeyRef(request.encryptKeyName, request.keyPassword),
                                           source=file.file, size=_size(file))
    return _streamed(sealed, f"{_name(file, 'file')}{SUFFIX}")


@router.post("/v1/synchronousFileDecrypt", operation_id="synchronousFileDecrypt",
             response_class=StreamingResponse, responses=_FILE_RESPONSE,
             summary="Decrypt a file container with an EC P-384 key; authenticated in full before the first byte")
def synchronous_file_decrypt(body: Annotated[SignedFileDecryptRequestDto, Body(alias="SignedFileDecryptRequestDto")],
                             file: UploadFile, services: ServicesDep, caller: CallerDep) -> StreamingResponse:
    request = body.fileDecryptRequest
    opened = services.key_use.file_decrypt(caller, KeyRef(request.decryptKeyName, request.keyPassword),
                                           source=file.file, size=_size(file))
    name = _name(file, "file.encrypted")
    return _streamed(opened, name.removesuffix(SUFFIX) if name.endswith(SUFFIX) else f"{name}.decrypted")


def _size(file: UploadFile) -> int:
    """The spooled part's size (Starlette counts it while it writes the part)."""
    if file.size is not None:
        return file.size
    file.file.seek(0, 2)
    size = file.file.tell()
    file.file.seek(0)
    return size


def _name(file: UploadFile, default: str) -> str:
    """The part's file name reduced to safe characters (no path, no quote), or ``default``."""
    name = _UNSAFE.sub("_", (file.filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")
    return name[:200] or default


def _streamed(result: StreamedFile, filename: str) -> StreamingResponse:
    return StreamingResponse(result.chunks, media_type="application/octet-stream",
                             headers={"Content-Length": str(result.length),
                                      "Content-Disposition": f'attachment; filename="{filename}"'})
