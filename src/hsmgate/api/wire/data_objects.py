"""Data object DTO (reference §3.1, ``DataObjectDto``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hsmgate.api.wire.common import Base64Bytes, WireModel


class DataObjectAttributes(WireModel):
    """``DataObjectAttributes``; ``private`` (JSON name) means the value is stored encrypted."""

    private_: bool | None = Field(None, alias="private")
    modifiable: bool | None = None
    destroyable: bool | None = None


class DataObjectDto(WireModel):
    name: str = Field(min_length=1, max_length=256)
    value: Base64Bytes = Field(description="base64, at most 64 KB")
    attributes: DataObjectAttributes | None = None


class DataObjectAttributesOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    private_: bool = Field(alias="private")
    modifiable: bool
    destroyable: bool


class DataObjectResponseDto(BaseModel):
    name: str
    value: str
    attributes: DataObjectAttributesOut
