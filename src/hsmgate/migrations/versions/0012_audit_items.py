"""Audit records of signatures list what was signed: ``audit_log.items`` (nullable text, hashed only
when set, so the records written before keep their hashes). A record of a single signature or of a
batch carries one item per signature: its index, algorithm, SHA-256 of the payload, outcome and
error code (``domain/audit/items.py``).

A plain ADD COLUMN (no table copy): the append-only triggers of ``audit_log`` stay in place.

Revision ID: 0012_audit_items
Revises: 0011_approvers
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_audit_items"
down_revision = "0011_approvers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("items", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "items")
