"""Derivation DTOs: ``ImportKeyDto`` (seed import) and ``DeriveKeyDto`` (reference wave 2 §1.3, §1.4)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hsmgate.api.wire.common import Base64Bytes, Password, WireModel
from hsmgate.api.wire.keys import AddressFormat, CreateKeyAttributes, KeyUseAttributes


class ImportSeedDto(WireModel):
    """Body of ``POST /v1/importedKey``: a BIP-32 / SLIP-0010 master from a seed."""

    label: str = Field(min_length=1, max_length=256)
    password: Password = None
    seed: Base64Bytes = Field(description="the seed, 128 to 512 bits (256 advised); not a mnemonic")
    curveOid: str = Field(examples=["1.3.132.0.10"])
    algorithm: str | None = Field(None, examples=["EC"], description="optional: EC or ED, must match curveOid")
    addressFormat: AddressFormat | None = None
    attributes: CreateKeyAttributes
    policy: dict[str, Any] | None = None


class DeriveKeyAttributes(KeyUseAttributes):
    """``AttributesDto`` of ``POST /v1/derivedKey`` (a child is no derivation master)."""


class DeriveKeyDto(WireModel):
    """Body of ``POST /v1/derivedKey``."""

    masterKeyLabel: str = Field(min_length=1, max_length=256)
    masterKeyPassword: Password = None
    derivationPath: str = Field(min_length=1, examples=["44'/0'/0'/0/0"],
                                description="without a leading m/ or /; hardened steps with an apostrophe")
    attributes: DeriveKeyAttributes | None = Field(None, description="absent: the master's attributes")
