"""SQLAlchemy 2 table models for hsmgate's state database (SQLite by default, PostgreSQL too).

Schema changes go through Alembic migrations in ``hsmgate/migrations``; these models and the
latest migration must describe the same schema (a unit test compares them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


class KeyMetadata(Base):
    """What hsmgate itself knows about a key, beyond what its backend stores."""

    __tablename__ = "key_metadata"
    __table_args__ = (UniqueConstraint("partition", "label", name="uq_key_metadata_partition_label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    label: Mapped[str] = mapped_column(String(512), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
