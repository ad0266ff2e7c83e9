"""Wire building blocks shared by every DTO: base64 fields, passwords, the error body."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

_B64_RE = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
_PEM_ARMOUR = re.compile(r"-----(BEGIN|END) [A-Z0-9 ]+-----")
_WHITESPACE = re.compile(r"\s+")
B64_PATTERN = _B64_RE.pattern


def decode_base64(value: Any) -> bytes:
    """Standard base64 with padding, as the TSB's ``Base64Encoded`` validator accepts it (PEM armour
    lines and line breaks are dropped first)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        raise ValueError("must be a base64 string")
    text = value
    if not _B64_RE.fullmatch(text):  # slow path only for PEM armour and line breaks (hot path: one C match)
        text = _WHITESPACE.sub("", _PEM_ARMOUR.sub("", value))
        if not _B64_RE.match(text):
            raise ValueError("must be standard base64 with padding")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("must be standard base64 with padding") from None


def encode_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(decode_base64),
    PlainSerializer(encode_base64, return_type=str),
    WithJsonSchema({"type": "string", "format": "byte", "pattern": B64_PATTERN}),
]


def _password(value: Any) -> str | None:
    """A Java ``char[]``: a JSON array of one-character strings, or (as clients send) a string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(c, str) and len(c) == 1 for c in value):
        return "".join(value)
    raise ValueError("must be a string or an array of single characters")


Password = Annotated[
    str | None,
    BeforeValidator(_password),
    WithJsonSchema({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string", "pattern": "^.{1}$"}}],
                    "nullable": True}),
]


class WireModel(BaseModel):
    """Base of request DTOs: unknown fields are ignored, as TSB clients send extras."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ErrorBody(BaseModel):
    """``ReasonBasedExceptionDto``: every error hsmgate returns has this shape."""

    errorCode: int = Field(examples=[650])
    reason: str = Field(examples=["res.error.key.not.existent"])
    message: str = Field(examples=["Key with name NOPE not found"])


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Invalid input (TSB code 6xx/4xx)"),
        (401, "Not authenticated"),
        (403, "Not allowed"),
        (404, "Key or resource not found (TSB code 65x)"),
        (405, "Method not allowed"),
        (413, "Request body larger than HSMGATE_MAX_BODY_BYTES (TSB code 600)"),
        (500, "HSM or server error (TSB code 7xx)"),
        (503, "HSM not reachable (TSB code 701)"),
    )
}
