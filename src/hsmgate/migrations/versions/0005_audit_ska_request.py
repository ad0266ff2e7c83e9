"""Audit records of SKA requests name the request: ``audit_log.ska_request_id`` (nullable; hashed
only when set, so the records written before keep their hashes).

A plain ADD COLUMN (no table copy): the append-only triggers of ``audit_log`` stay in place.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("ska_request_id", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "ska_request_id")
