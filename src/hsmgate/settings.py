"""One Settings object: defaults for ``make run``, then an optional TOML file, then ``HSMGATE_*``
environment variables, then command-line flags (each overriding the one before)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


class Settings(BaseSettings):
    """hsmgate's configuration. Secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(env_prefix="HSMGATE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    data_dir: Path = Path(".hsmgate")
    dev: bool = False
    database_url: str | None = None
    backend: Literal["soft", "pkcs11"] = "soft"
    partition: str = "default"
    master_key: SecretStr | None = None
    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    pkcs11_slot: int | None = None
    pkcs11_pin: SecretStr | None = None
    pkcs11_pin_file: Path | None = None
    pkcs11_pool_size: int = Field(4, ge=1, le=64)
    attestation_key_name: str = "attestation-key"
    attestation_key_size: int = 2048
    max_random_length: int = Field(65536, ge=1)
    log_level: str = "info"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.backend == "pkcs11" and not self.pkcs11_module:
            raise ValueError("HSMGATE_PKCS11_MODULE is required with HSMGATE_BACKEND=pkcs11")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlSource(settings_cls)

    # -- derived values ------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'state.db').resolve()}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check_bind(self) -> None:
        """Refuse to expose an unauthenticated service beyond loopback."""
        if not self.is_loopback:
            mode = "dev mode" if self.dev else "this version (authentication is not implemented yet)"
            raise ConfigError(f"{mode} serves only on loopback; refusing to bind {self.host}")

    def load_master_key(self) -> bytes:
        """The 32-byte soft-token master key: HSMGATE_MASTER_KEY (base64 or hex), else
        ``<data-dir>/master.key`` (created with mode 0600 on first start)."""
        if self.master_key is not None:
            return _decode_key(self.master_key.get_secret_value())
        path = self.data_dir / "master.key"
        if path.exists():
            if path.stat().st_mode & 0o077:
                raise ConfigError(f"{path} must not be readable by group or others (chmod 600)")
            return _decode_key(path.read_text().strip())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex() + "\n")
        return key

    def load_pkcs11_pin(self) -> str:
        if self.pkcs11_pin is not None:
            return self.pkcs11_pin.get_secret_value()
        if self.pkcs11_pin_file is not None:
            try:
                return self.pkcs11_pin_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read HSMGATE_PKCS11_PIN_FILE {self.pkcs11_pin_file}: {exc.strerror}") from None
        raise ConfigError("HSMGATE_PKCS11_PIN or HSMGATE_PKCS11_PIN_FILE is required with the pkcs11 backend")


def _decode_key(text: str) -> bytes:
    import base64
    import binascii

    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise ConfigError("the master key must be 32 bytes, given as 64 hex digits or base64")
    return key


class _TomlSource(PydanticBaseSettingsSource):
    """Settings from the TOML file named by HSMGATE_CONFIG (keys as the field names)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get("HSMGATE_CONFIG")
        self._data: dict[str, Any] = {}
        if path:
            try:
                with open(path, "rb") as handle:
                    self._data = tomllib.load(handle)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {path}: {exc}") from None

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)
