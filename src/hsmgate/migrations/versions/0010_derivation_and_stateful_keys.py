"""Derivation masters and stateful hash-based keys in the soft token.

``soft_keys.derivation``: the public node facts of a BIP-32 / SLIP-0010 master or persisted child
(scheme, chain code, depth, child number, parent fingerprint, xpub) as JSON, readable without
unsealing the key. ``soft_keys.next_index``: for a stateful key (LMS), the next one-time key index;
it is advanced in its own committed transaction before any signature that uses an index leaves the
token, so no index is ever used twice, whatever crashes.

Revision ID: 0010
Revises: 0009_partition_binding
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009_partition_binding"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("soft_keys") as batch:
        batch.add_column(sa.Column("derivation", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("next_index", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("soft_keys") as batch:
        batch.drop_column("next_index")
        batch.drop_column("derivation")
