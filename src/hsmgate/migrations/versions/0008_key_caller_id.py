"""The ``id`` a caller gave when creating a key (TSB ``CreateKeyDto.id``), kept in hsmgate's key
metadata: ``json.id`` of a key is that value, else null — never the CKA_ID a backend assigned.

Soft-token keys carried the caller's id in ``soft_keys.key_id`` (the soft token stores nothing
else there): it is copied over. PKCS#11 keys made before this revision read null: their CKA_ID
cannot tell a caller's id from the one hsmgate drew at random.

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_metadata") as batch:
        batch.add_column(sa.Column("key_id", sa.Text(), nullable=True))
    bind = op.get_bind()
    soft_ids = bind.execute(sa.text("SELECT partition, label, key_id FROM soft_keys WHERE key_id IS NOT NULL"))
    for partition, label, raw in soft_ids.fetchall():
        try:
            key_id = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            continue
        bind.execute(sa.text("UPDATE key_metadata SET key_id = :key_id WHERE partition = :partition AND label = :label"),
                     {"key_id": key_id, "partition": partition, "label": label})


def downgrade() -> None:
    with op.batch_alter_table("key_metadata") as batch:
        batch.drop_column("key_id")
