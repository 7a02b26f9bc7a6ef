"""hardening: worker instances and status, per-job attempt budget and queue deadline, system users

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worker_groups") as batch:
        batch.add_column(
            sa.Column("allow_system_user", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("instance", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="online"))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"))
        batch.add_column(sa.Column("queue_deadline", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("queue_deadline")
        batch.drop_column("max_attempts")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("status")
        batch.drop_column("instance")
    with op.batch_alter_table("worker_groups") as batch:
        batch.drop_column("allow_system_user")
