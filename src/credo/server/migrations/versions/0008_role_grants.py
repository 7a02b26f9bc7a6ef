"""role grants: roles for AD groups on some or all runbooks and worker groups (issue 15 point 2)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("group", sa.String(length=256), nullable=False),
        sa.Column("runbooks", sa.JSON(), nullable=True),
        sa.Column("worker_groups", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("role_grants")
