"""Partition bindings: the token each partition's state belongs to (backend; PKCS#11 token label and
serial, or a fingerprint of the soft token's master key). Filled on each partition's next start;
a start with another backend or token is then refused.

The revision id is distinctive on purpose: other branches may add their own "0009"; whichever
lands second re-chains its ``down_revision``.

Revision ID: 0009_partition_binding
Revises: 0008
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_partition_binding"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partition_bindings",
        sa.Column("partition", sa.String(128), primary_key=True),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("token_label", sa.String(64), nullable=True),
        sa.Column("token_serial", sa.String(64), nullable=True),
        sa.Column("key_fingerprint", sa.String(64), nullable=True),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("partition_bindings")
