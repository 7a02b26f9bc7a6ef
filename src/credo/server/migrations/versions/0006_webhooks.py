"""webhooks: signed webhooks (URL token hashed, secrets sealed) and accepted signatures

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("url_hash", sa.String(length=80), nullable=False, unique=True),
        sa.Column(
            "runbook_id", sa.Integer(), sa.ForeignKey("runbooks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "group_id", sa.Integer(), sa.ForeignKey("worker_groups.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("parameter", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("secret_sealed", sa.String(length=256), nullable=False),
        sa.Column("previous_sealed", sa.String(length=256), nullable=True),
        sa.Column("previous_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate_capacity", sa.Integer(), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("bucket_tokens", sa.Float(), nullable=True),
        sa.Column("bucket_updated", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhooks_runbook_id", "webhooks", ["runbook_id"])
    op.create_index("ix_webhooks_group_id", "webhooks", ["group_id"])
    op.create_table(
        "webhook_signatures",
        sa.Column("digest", sa.String(length=64), primary_key=True),
        sa.Column(
            "webhook_id", sa.Integer(), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("until", sa.Float(), nullable=False),
    )
    op.create_index("ix_webhook_signatures_webhook_id", "webhook_signatures", ["webhook_id"])


def downgrade() -> None:
    op.drop_table("webhook_signatures")
    op.drop_table("webhooks")
