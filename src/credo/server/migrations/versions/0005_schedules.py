"""schedules: cron schedules of runbooks and the record of their fires

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column(
            "runbook_id", sa.Integer(), sa.ForeignKey("runbooks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "group_id", sa.Integer(), sa.ForeignKey("worker_groups.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("cron", sa.String(length=256), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("missed_runs", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_fire", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_fire", sa.DateTime(timezone=True), nullable=True),
        sa.Column("missed_uncounted", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_schedules_runbook_id", "schedules", ["runbook_id"])
    op.create_index("ix_schedules_group_id", "schedules", ["group_id"])
    op.create_index("ix_schedules_next_fire", "schedules", ["next_fire"])
    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "schedule_id", sa.Integer(), sa.ForeignKey("schedules.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("missed", sa.Boolean(), nullable=False),
        sa.Column("run", sa.Boolean(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("schedule_id", "at", name="uq_schedule_fire"),
    )
    op.create_index("ix_schedule_fires_schedule_id", "schedule_fires", ["schedule_id"])


def downgrade() -> None:
    op.drop_table("schedule_fires")
    op.drop_table("schedules")
