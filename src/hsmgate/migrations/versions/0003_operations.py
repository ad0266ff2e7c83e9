"""Key passwords and origin, certificates, data objects, and the key types of wrapped blobs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_metadata") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(256), nullable=True))
        batch.add_column(sa.Column("origin", sa.String(16), nullable=True))
        batch.add_column(sa.Column("public_only", sa.Boolean(), nullable=True))
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("partition", sa.String(128), nullable=False),
        sa.Column("label", sa.String(512), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("partition", "label", name="uq_certificates_partition_label"),
    )
    op.create_table(
        "data_objects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("partition", sa.String(128), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=True),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("modifiable", sa.Boolean(), nullable=False),
        sa.Column("destroyable", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("partition", "name", name="uq_data_objects_partition_name"),
    )
    op.create_table(
        "wrapped_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("partition", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("key_type", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("partition", "digest", name="uq_wrapped_keys_partition_digest"),
    )


def downgrade() -> None:
    op.drop_table("wrapped_keys")
    op.drop_table("data_objects")
    op.drop_table("certificates")
    with op.batch_alter_table("key_metadata") as batch:
        batch.drop_column("public_only")
        batch.drop_column("origin")
        batch.drop_column("password_hash")
