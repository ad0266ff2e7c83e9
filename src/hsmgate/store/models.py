"""SQLAlchemy 2 table models for hsmgate's state database (SQLite by default, PostgreSQL too).

Schema changes go through Alembic migrations in ``hsmgate/migrations``; these models and the
latest migration must describe the same schema (a unit test compares them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false


class Base(DeclarativeBase):
    """Declarative base of every hsmgate table."""


class SoftKeyRecord(Base):
    """One key of the built-in software token. Private and secret material is only ever stored
    sealed (AES-256-GCM under the master key, AAD binding partition and label)."""

    __tablename__ = "soft_keys"
    __table_args__ = (UniqueConstraint("partition", "label", name="uq_soft_keys_partition_label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    label: Mapped[str] = mapped_column(String(512), nullable=False)
    key_id: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    key_type: Mapped[str] = mapped_column(String(32), nullable=False)
    key_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    curve_oid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attributes: Mapped[dict] = mapped_column(JSON, nullable=False)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    sealed_material: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    nonce: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    #: public node facts of a derivation master or persisted child (``hsm/derivation.py`` NodeInfo)
    derivation: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    #: stateful keys (LMS): the next one-time key index, advanced before a signature is released
    next_index: Mapped[int | None] = mapped_column(Integer, nullable=True)


class KeyMetadata(Base):
    """What hsmgate itself knows about a key, beyond what its backend stores."""

    __tablename__ = "key_metadata"
    __table_args__ = (UniqueConstraint("partition", "label", name="uq_key_metadata_partition_label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    label: Mapped[str] = mapped_column(String(512), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    #: scrypt hash of the key password (``domain/passwords.py``); None: the key has no password
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: where the material came from: None or ``generated``, ``imported`` (import or unwrap)
    origin: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: True for an imported public key (or certificate) without its private key
    public_only: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: SKA policy: the PolicyDto JSON incl. keyStatus; None for a key without policy
    policy: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: SKA guard bits read on every use of the key (``domain/ska/guard.py``); None without policy
    policy_guard: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: ``addressFormat.format`` of an SKA key (``ETH``, ``BTC``); None without
    address_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: True for a key hsmgate keeps for itself (attestation, SKA timestamp, data objects …):
    #: refused for every caller operation by the key-use gate (``domain/key_use.py``)
    internal: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    #: the ``id`` the caller gave when creating the key (TSB ``CreateKeyDto.id``, returned as
    #: ``json.id``); None when none was given — a backend's own identifiers (CKA_ID) are not shown
    key_id: Mapped[str | None] = mapped_column(Text, nullable=True)


class KeyGenerationRow(Base):
    """The single row (``id`` 1) of the key generation: ``value`` goes up by one in every transaction
    that changes ``soft_keys`` or ``key_metadata`` (``store/key_generation.py``)."""

    __tablename__ = "key_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PartitionRecord(Base):
    """A partition served besides the one of the settings (``hsmgate partition add``).

    ``options`` holds the backend's non-secret settings (PKCS#11 module, token label, slot, pool
    size); the secret (the PKCS#11 user PIN) is only stored sealed: AES-256-GCM under the master
    key, ``secret_nonce`` its 96-bit nonce, the associated data binding it to ``name``.
    """

    __tablename__ = "partitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    backend: Mapped[str] = mapped_column(String(16), nullable=False)
    options: Mapped[dict] = mapped_column(JSON, nullable=False)
    sealed_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    secret_nonce: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PartitionBinding(Base):
    """The token a served partition's state belongs to, recorded on its first start: the backend,
    a PKCS#11 token's label and serial, or a fingerprint of the soft token's master key (an HMAC,
    never the key). A start with another backend or token is refused (``domain/partition_binding.py``)."""

    __tablename__ = "partition_bindings"

    partition: Mapped[str] = mapped_column(String(128), primary_key=True)
    backend: Mapped[str] = mapped_column(String(16), nullable=False)
    token_label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AuditRecordRow(Base):
    """One record of a partition's audit chain. Append-only: the migration installs triggers that
    refuse UPDATE and DELETE. ``time`` is kept as the exact ISO-8601 text that was hashed."""

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("partition", "seq", name="uq_audit_log_partition_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    time: Mapped[str] = mapped_column(String(40), nullable=False)
    principal: Mapped[str] = mapped_column(String(512), nullable=False)
    auth_method: Mapped[str] = mapped_column(String(64), nullable=False)
    operation: Mapped[str] = mapped_column(String(64), nullable=False)
    key_label: Mapped[str | None] = mapped_column(String(512), nullable=True)
    request_id: Mapped[str] = mapped_column(String(128), nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    #: the SKA request a record is about (migration 0005); hashed only when set
    ska_request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditChainHead(Base):
    """The last record of each partition's chain: the row appenders lock to serialise the chain."""

    __tablename__ = "audit_chain_heads"

    partition: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditCheckpointRow(Base):
    """A signature by the partition's attestation key over (partition, seq, hash, time) of a record."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("partition", "seq", name="uq_audit_checkpoints_partition_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    time: Mapped[str] = mapped_column(String(40), nullable=False)
    key_name: Mapped[str] = mapped_column(String(512), nullable=False)
    signature: Mapped[str] = mapped_column(Text, nullable=False)


class CertificateRecord(Base):
    """The X.509 certificate attached to a key (DER), as ``/v1/certificate/**`` sets it."""

    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("partition", "label", name="uq_certificates_partition_label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    label: Mapped[str] = mapped_column(String(512), nullable=False)
    der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class DataObjectRecord(Base):
    """A TSB data object (``/v1/dataObject``). A ``private`` object's value is stored encrypted by
    the partition (AES-GCM under its data-object key): ``value`` is ciphertext‖tag, ``nonce`` the IV."""

    __tablename__ = "data_objects"
    __table_args__ = (UniqueConstraint("partition", "name", name="uq_data_objects_partition_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    nonce: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    private: Mapped[bool] = mapped_column(Boolean, nullable=False)
    modifiable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    destroyable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class WrappedKeyRecord(Base):
    """The key type of a blob ``/v1/wrap`` produced, by the blob's SHA-256, so ``/v1/synchronousUnwrap``
    restores the original algorithm of a secret key (raw key bytes do not say whether they were an
    AES, Camellia, ChaCha20 or HMAC key). Holds no key material."""

    __tablename__ = "wrapped_keys"
    __table_args__ = (UniqueConstraint("partition", "digest", name="uq_wrapped_keys_partition_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    key_type: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SkaRequestRow(Base):
    """An asynchronous (SKA workflow) request: ``/v1/sign``, ``/v1/block``, ….

    ``status`` is the TSB status, plus ``EXECUTING`` while one process runs it (shown as APPROVED):
    a process claims a request by a conditional UPDATE to EXECUTING, so it runs exactly once even
    when several processes share the database. ``request`` is the envelope JSON as re-serialised
    (level-3 ``requestBase64``); ``policy`` the key's PolicyDto JSON when the request was made (the
    rule of ``operation`` is evaluated against it); ``token`` the ``approvalToBeSigned`` bytes.
    ``ready_at``: an APPROVED request may execute from then on (timelock); ``expires_at``: when the
    last live token times out. ``claimed_at`` is the wall-clock time of the claim.
    """

    __tablename__ = "ska_requests"
    __table_args__ = (
        Index("ix_ska_requests_partition_status", "partition", "status"),
        Index("ix_ska_requests_partition_key", "partition", "key_label"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    key_label: Mapped[str] = mapped_column(String(512), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    operation: Mapped[int] = mapped_column(Integer, nullable=False)
    policy: Mapped[str | None] = mapped_column(Text, nullable=True)
    request: Mapped[str] = mapped_column(Text, nullable=False)
    token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    executed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)


class SkaTaskRow(Base):
    """One approver's task of a request. ``approver`` is the approver's DER SubjectPublicKeyInfo;
    ``state`` is OPEN, APPROVED (``signature`` = the approval, DER signature-with-algorithm) or
    REJECTED (the approver deleted the task). ``seq`` orders tasks created in the same second."""

    __tablename__ = "ska_tasks"
    __table_args__ = (
        UniqueConstraint("request_id", "approver", name="uq_ska_tasks_request_approver"),
        Index("ix_ska_tasks_partition_state", "partition", "state"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    request_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("ska_requests.id", ondelete="CASCADE"), nullable=False
    )
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    approver: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ApproverRecord(Base):
    """An approver made by ``/v1/approverManagement/create`` (wave-2 §2). Holds no secret in clear:
    ``wrapped_data_key`` is an AES-256 data key encrypted with RSA-OAEP (``oaep_hash``) under the
    partition's approver backup key; ``backup`` is the approver's PKCS#12 (protected by its backup
    password) and ``recovery`` its private key (PKCS#8 DER), each AES-256-GCM under that data key
    as nonce‖ciphertext‖tag. ``certificate`` is the self-signed X.509 (DER) policies resolve the
    approver's name to. ``code_hash``: SHA-256 of the pending one-time code (None once used),
    valid until ``code_expires_at``; ``onboarded_at``: when a code was last redeemed."""

    __tablename__ = "approvers"
    __table_args__ = (UniqueConstraint("partition", "name", name="uq_approvers_partition_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    key_size: Mapped[int] = mapped_column(Integer, nullable=False)
    certificate: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    backup_key: Mapped[str] = mapped_column(String(512), nullable=False)
    oaep_hash: Mapped[str] = mapped_column(String(16), nullable=False)
    wrapped_data_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    backup: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    recovery: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    code_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    code_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    onboarded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
