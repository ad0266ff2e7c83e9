"""Smart Key Attributes: key policies and addresses, asynchronous requests and approval tasks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_metadata") as batch:
        batch.add_column(sa.Column("policy", sa.Text(), nullable=True))
        batch.add_column(sa.Column("policy_guard", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("address_format", sa.String(16), nullable=True))
    op.create_table(
        "ska_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("partition", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key_label", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("operation", sa.Integer(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=True),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
    )
    op.create_index("ix_ska_requests_partition_status", "ska_requests", ["partition", "status"])
    op.create_index("ix_ska_requests_partition_key", "ska_requests", ["partition", "key_label"])
    op.create_table(
        "ska_tasks",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("request_id", sa.String(36), sa.ForeignKey("ska_requests.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("partition", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("approver", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signature", sa.LargeBinary(), nullable=True),
        sa.UniqueConstraint("request_id", "approver", name="uq_ska_tasks_request_approver"),
    )
    op.create_index("ix_ska_tasks_partition_state", "ska_tasks", ["partition", "state"])


def downgrade() -> None:
    op.drop_index("ix_ska_tasks_partition_state", table_name="ska_tasks")
    op.drop_table("ska_tasks")
    op.drop_index("ix_ska_requests_partition_key", table_name="ska_requests")
    op.drop_index("ix_ska_requests_partition_status", table_name="ska_requests")
    op.drop_table("ska_requests")
    with op.batch_alter_table("key_metadata") as batch:
        batch.drop_column("address_format")
        batch.drop_column("policy_guard")
        batch.drop_column("policy")
