"""Approvers of the approver management API (wave-2 §2): their certificate, their PKCS#12 backup and
private key sealed under the partition's approver backup key, the pending one-time code's hash.

The revision id is distinctive on purpose: other branches may add their own "0011"; whichever
lands second re-chains its ``down_revision``.

Revision ID: 0011_approvers
Revises: 0010
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_approvers"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("partition", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("key_size", sa.Integer(), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("backup_key", sa.String(512), nullable=False),
        sa.Column("oaep_hash", sa.String(16), nullable=False),
        sa.Column("wrapped_data_key", sa.LargeBinary(), nullable=False),
        sa.Column("backup", sa.LargeBinary(), nullable=False),
        sa.Column("recovery", sa.LargeBinary(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("onboarded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("partition", "name", name="uq_approvers_partition_name"),
    )


def downgrade() -> None:
    op.drop_table("approvers")
