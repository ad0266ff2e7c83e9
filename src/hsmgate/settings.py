"""One Settings object: defaults for ``make run``, then an optional TOML file, then ``HSMGATE_*``
environment variables, then command-line flags (each overriding the one before)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


#: Database URL schemes hsmgate has a driver for (SQLAlchemy dialect names).
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")

#: Shortest API key accepted (characters); a TSB-style "keymanagement1" is a password, not a key.
MIN_API_KEY_LENGTH = 16
#: Shortest HS256 secret accepted (bytes), as RFC 7518 §3.2 requires for HMAC-SHA-256.
MIN_HS256_SECRET_LENGTH = 32


def _comma_separated(value: Any) -> Any:
    """``"a,b"`` (env) or ``["a", "b"]`` (TOML) → a list without empty items."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple):
        return [item.strip() if isinstance(item, str) else item for item in value
                if not (isinstance(item, str) and not item.strip())]
    return value


#: Several secrets, comma-separated in the environment, a list (or one string) in TOML.
SecretList = Annotated[tuple[SecretStr, ...], NoDecode, BeforeValidator(_comma_separated)]
PathList = Annotated[tuple[Path, ...], NoDecode, BeforeValidator(_comma_separated)]
TextList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_separated)]


#: The TSB role names (``auth/roles.py`` ``Role`` has one member each; settings name them as text,
#: so the configuration knows nothing of the authentication code that reads it).
RoleName = Literal["keyManagement", "keyOperation", "approver", "service", "approverKeyManagement"]


class MtlsIdentity(BaseModel):
    """What a client certificate may do: its partition (default: HSMGATE_PARTITION) and roles."""

    model_config = {"extra": "forbid"}

    partition: str | None = None
    roles: tuple[RoleName, ...] = ()


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
    #: sessions per PKCS#11 partition and worker process; 40 = Starlette's threadpool, so no operation waits
    pkcs11_pool_size: int = Field(40, ge=1, le=256)
    #: run PKCS#11 key operations on the event loop, as the soft token's, instead of in the threadpool: only
    #: for a token that answers in well under a millisecond (SoftHSM2, a local PCIe HSM), with SQLite state
    pkcs11_inline: bool = False
    #: keys a PKCS#11 partition (object handle + description) and the key-use gate (password hash, SKA guard
    #: bits) remember per worker process; 0: none
    key_cache_size: int = Field(50_000, ge=0)
    attestation_key_name: str = "attestation-key"
    attestation_key_size: int = 2048
    max_random_length: int = Field(65536, ge=1)
    log_level: str = "info"
    #: ``text``: one escaped line per record; ``json``: one JSON object per line (hsmgate/log_format.py)
    log_format: Literal["text", "json"] = "text"
    # -- RFC 3161 timestamps --
    #: key that signs /v1/createRfcTimestamp tokens (the TSB's hsm.rfcTimestampKeyName); unset: refused
    rfc_timestamp_key_name: str | None = None
    #: TSA policy OID written into each TSTInfo (default: under 2.999, the arc for examples — set your own)
    rfc_timestamp_policy: str = Field("2.999.3161.1", pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$")
    # -- Smart Key Attributes --
    #: EC P-256 key that signs the HSM timestamps of SKA requests (the TSB's hsm.timestampKeyName)
    timestamp_key_name: str = "timestamp-key"
    #: how old an approver's timestamp may be, and how far ahead of the server's clock (seconds)
    max_timestamp_diff: int = Field(600, ge=0)
    max_future_timestamp_diff: int = Field(0, ge=0)
    #: DER or PEM certificates of timestamp signers allowed to fetch tasks for approvers
    timestamp_signing_certificates: PathList = ()
    #: The ``requestSignature`` whitelist (TSB 2.2.0 ``allowedRequestCertificates``): PEM/DER certificates or
    #: public keys of the application keys that must sign every asynchronous request; empty: the rule is off.
    allowed_request_certificates: PathList = ()
    #: The same whitelist as SHA-256 fingerprints (hex) of the keys' DER SubjectPublicKeyInfo.
    allowed_request_key_fingerprints: TextList = ()
    #: seconds between two passes of the request scheduler (timelocks, expiry)
    ska_scheduler_interval: float = Field(5.0, gt=0, le=3600)
    #: seconds an executed request's result stays fetchable (then erased; domain/ska/results.py)
    ska_result_retention: int = Field(86400, ge=60)
    # -- approver management (docs/approvers.md) --
    #: RSA key that seals approvers' backups (the TSB's hsm.backupKeyName); made at start, internal
    approver_backup_key_name: str = Field("approver-mgmt-backup-key-rsa-wrapping", min_length=1, max_length=256)
    #: seconds a one-time code of /v1/approverManagement/create (restore, renew) stays redeemable
    approver_one_time_code_ttl: int = Field(86400, ge=60)
    #: the backup key's SKA policy (PolicyDto JSON), applied at start; unset: an empty policy, so a
    #: forgotten-password restore executes at once
    approver_backup_key_policy: str | None = None
    # -- scale-out --
    workers: int = Field(1, ge=1, le=64)
    max_batch: int = Field(1000, ge=1, le=100_000)
    #: Largest request body accepted (bytes), checked before authentication: on every route but the
    #: batches (default 1 MiB), and on the batch routes (None: sized from max_batch to the largest
    #: legitimate batch, api/body_limit.py: 96,624,576 for 1000).
    max_body_bytes: int = Field(1024 * 1024, ge=1)
    max_batch_body_bytes: int | None = Field(None, ge=1)
    #: Largest file accepted by /v1/fileEncrypt and /v1/synchronousFileDecrypt (bytes; default 2 GiB):
    #: their request body may be 1 MiB larger (the JSON part, the multipart framing).
    max_file_bytes: int = Field(2 * 1024**3, ge=1)
    #: FastAPI's native OpenTelemetry (traces, metrics, logs to the globally configured providers).
    #: Off by default: even without a provider, checking for one costs time on every request
    #: (bench/results/design-measurements.md).
    otel: bool = False

    # -- authentication (docs/security.md) ------------------------------------------------
    #: API keys per TSB role (header X-API-KEY); several per role for rollover.
    api_keys_key_management: SecretList = ()
    api_keys_key_operation: SecretList = ()
    api_keys_approver: SecretList = ()
    api_keys_service: SecretList = ()
    api_keys_approver_key_management: SecretList = ()
    #: Tolerate the two role mix-ups of official TSB clients (reference §2 CONFLICT).
    lenient_roles: bool = False
    #: JWT bearer tokens: expected ``iss`` and ``aud``, verification keys, signing key of ``token issue``.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_hs256_secret: SecretStr | None = None
    jwt_public_keys: PathList = ()
    jwt_jwks_file: Path | None = None
    jwt_signing_key: Path | None = None
    jwt_leeway_seconds: int = Field(30, ge=0, le=600)
    #: Longest token lifetime accepted (seconds): exp - iat, or exp - now without iat. A stolen
    #: token is useful at most this long; ``hsmgate token issue`` refuses longer --ttl values.
    jwt_max_lifetime: int = Field(86400, ge=60)
    #: TLS of ``hsmgate serve`` and client certificates (mTLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    tls_client_auth: Literal["need", "want", "none"] = "none"
    #: Client certificate subject DN (RFC 4514) or ``sha256:<hex fingerprint>`` or ``*`` → identity.
    mtls_identities: dict[str, MtlsIdentity] = Field(default_factory=dict)

    # -- audit -----------------------------------------------------------------------------
    audit_enabled: bool = True
    #: Refuse an operation whose audit record cannot be written.
    audit_fail_closed: bool = True
    #: Sign a checkpoint of a partition's chain every this many records.
    audit_checkpoint_interval: int = Field(100, ge=1)
    #: ``GET /v1/hsm/log`` answers this many of the partition's last audit records, one line each.
    hsm_log_lines: int = Field(1000, ge=1, le=100_000)
    #: Every signed checkpoint is also appended here, outside the database (store/audit_anchors.py);
    #: default ``<data-dir>/audit-anchors.jsonl``.
    audit_anchor_file: Path | None = None
    #: Also send every signed checkpoint to syslog, one line each.
    audit_anchor_syslog: bool = False
    #: Where syslog listens: a socket path or ``host:port`` (UDP); default /dev/log, else localhost:514.
    audit_anchor_syslog_address: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.backend == "pkcs11" and not self.pkcs11_module:
            raise ValueError("HSMGATE_PKCS11_MODULE is required with HSMGATE_BACKEND=pkcs11")
        if self.backend == "pkcs11" and (self.pkcs11_token_label is None) == (self.pkcs11_slot is None):
            raise ValueError("set exactly one of HSMGATE_PKCS11_TOKEN_LABEL and HSMGATE_PKCS11_SLOT with "
                             "HSMGATE_BACKEND=pkcs11 ('hsmgate pkcs11 list --module PATH' shows the tokens)")
        if self.database_url:
            _check_database_url(self.database_url)
        self._check_auth_settings()
        return self

    def _check_auth_settings(self) -> None:
        for role, keys in self.api_keys.items():
            if any(len(key.get_secret_value()) < MIN_API_KEY_LENGTH for key in keys):
                raise ValueError(f"API keys of role {role} must be at least {MIN_API_KEY_LENGTH} characters "
                                 "(make one with: openssl rand -hex 32)")
        if self.jwt_hs256_secret is not None and \
                len(self.jwt_hs256_secret.get_secret_value().encode()) < MIN_HS256_SECRET_LENGTH:
            raise ValueError(f"HSMGATE_JWT_HS256_SECRET must be at least {MIN_HS256_SECRET_LENGTH} bytes")
        jwt_keys = (self.jwt_hs256_secret is not None or bool(self.jwt_public_keys)
                    or self.jwt_jwks_file is not None or self.jwt_signing_key is not None)
        if jwt_keys and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError("HSMGATE_JWT_ISSUER and HSMGATE_JWT_AUDIENCE are required with JWT keys")
        if (self.tls_key or self.tls_client_ca) and not self.tls_cert:
            raise ValueError("HSMGATE_TLS_CERT is required with HSMGATE_TLS_KEY / HSMGATE_TLS_CLIENT_CA")
        if self.tls_client_auth != "none" and not self.tls_client_ca:
            raise ValueError(f"HSMGATE_TLS_CLIENT_AUTH={self.tls_client_auth} needs HSMGATE_TLS_CLIENT_CA")

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
    def resolved_audit_anchor_file(self) -> Path:
        """HSMGATE_AUDIT_ANCHOR_FILE, else ``audit-anchors.jsonl`` in the data directory."""
        return self.audit_anchor_file or self.data_dir / "audit-anchors.jsonl"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def api_keys(self) -> dict[RoleName, tuple[SecretStr, ...]]:
        """The configured API keys by role name (roles without keys left out)."""
        by_role: dict[RoleName, tuple[SecretStr, ...]] = {
            "keyManagement": self.api_keys_key_management, "keyOperation": self.api_keys_key_operation,
            "approver": self.api_keys_approver, "service": self.api_keys_service,
            "approverKeyManagement": self.api_keys_approver_key_management,
        }
        return {role: keys for role, keys in by_role.items() if keys}

    @property
    def jwt_enabled(self) -> bool:
        return bool(self.jwt_hs256_secret is not None or self.jwt_public_keys or self.jwt_jwks_file
                    or self.jwt_signing_key)

    @property
    def mtls_enabled(self) -> bool:
        return self.tls_client_ca is not None and self.tls_client_auth != "none"

    @property
    def auth_methods(self) -> list[str]:
        """The authentication methods configured: ``api-key``, ``jwt``, ``mtls`` (empty: none)."""
        methods = ["api-key"] if self.api_keys else []
        if self.jwt_enabled:
            methods.append("jwt")
        if self.mtls_enabled:
            methods.append("mtls")
        return methods

    def require_authentication(self) -> None:
        """Outside dev mode an authentication method must be configured."""
        if not self.dev and not self.auth_methods:
            raise ConfigError("no authentication method configured: set HSMGATE_API_KEYS_*, HSMGATE_JWT_* or "
                              "HSMGATE_TLS_CLIENT_CA (or use --dev, loopback only)")

    def check_bind(self) -> None:
        """Dev mode serves only on loopback. Outside dev mode an authentication method is required,
        and then any address may be bound."""
        if self.dev:
            if not self.is_loopback:
                raise ConfigError(f"dev mode serves only on loopback; refusing to bind {self.host}")
            return
        self.require_authentication()

    def load_master_key(self) -> bytes:
        """The 32-byte soft-token master key: HSMGATE_MASTER_KEY (base64 or hex), else
        ``<data-dir>/master.key`` (created with mode 0600 on first start)."""
        if self.master_key is not None:
            return _decode_key(self.master_key.get_secret_value())
        path = self.data_dir / "master.key"
        if path.exists():
            if path.stat().st_mode & 0o077:
                raise ConfigError(f"{path} must not be readable by group or others (chmod 600)")
            try:
                return _decode_key(path.read_text().strip())
            except OSError as exc:
                raise ConfigError(f"cannot read the master key {path}: {exc.strerror}: run hsmgate as the user "
                                  "that owns it, or set HSMGATE_MASTER_KEY") from None
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
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


def _check_database_url(url: str) -> None:
    """A URL of a database hsmgate has a driver for; the message never repeats the URL (it may hold
    a password)."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme in DATABASE_SCHEMES:
        return
    if scheme == "postgres":
        raise ValueError("HSMGATE_DATABASE_URL starts with postgres://, which SQLAlchemy does not accept: "
                         "write postgresql://user:password@host:5432/database")
    shown = f"'{scheme}://'" if scheme else "no scheme"
    raise ValueError(f"HSMGATE_DATABASE_URL has {shown}: use postgresql://user:password@host:5432/database "
                     "or sqlite:////absolute/path/state.db")


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
