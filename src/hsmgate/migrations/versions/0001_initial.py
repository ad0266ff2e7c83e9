"""Initial schema: software-token keys and key metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "soft_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("partition", sa.String(128), nullable=False),
        sa.Column("label", sa.String(512), nullable=False),
        sa.Column("key_id", sa.LargeBinary(), nullable=True),
        sa.Column("key_type", sa.String(32), nullable=False),
        sa.Column("key_size", sa.Integer(), nullable=True),
        sa.Column("curve_oid", sa.String(64), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("sealed_material", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("partition", "label", name="uq_soft_keys_partition_label"),
    )
    op.create_table(
        "key_metadata",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("partition", sa.String(128), nullable=False),
        sa.Column("label", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("partition", "label", name="uq_key_metadata_partition_label"),
    )


def downgrade() -> None:
    op.drop_table("key_metadata")
    op.drop_table("soft_keys")
