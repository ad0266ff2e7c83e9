"""Internal keys: ``key_metadata.internal`` flags the keys hsmgate keeps for itself (attestation,
SKA timestamp, data-object key, …). The key-use gate (``domain/key_use.py``) refuses every caller
operation on a flagged key.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_metadata") as batch:
        batch.add_column(sa.Column("internal", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("key_metadata") as batch:
        batch.drop_column("internal")
