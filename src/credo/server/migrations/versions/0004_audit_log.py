"""audit log: the append-only, hash-chained record of state-changing calls

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from credo.automation.auditlog import APPEND_ONLY_TRIGGER_DROP_SQL, APPEND_ONLY_TRIGGER_SQL, AUDIT_TABLE

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        AUDIT_TABLE,
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False, unique=True),
    )
    op.create_index("ix_audit_log_time", AUDIT_TABLE, ["time"])
    # PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the table (docs/control-plane.md, "Audit
    # log"); SQLite has no such guard beyond the application and the chain.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_TRIGGER_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_TRIGGER_DROP_SQL)
    op.drop_index("ix_audit_log_time", table_name=AUDIT_TABLE)
    op.drop_table(AUDIT_TABLE)
