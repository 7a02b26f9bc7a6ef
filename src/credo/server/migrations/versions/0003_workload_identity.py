"""workload identity: a worker group's token audiences, lifetime and cloud settings

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worker_groups") as batch:
        batch.add_column(
            sa.Column("token_audiences", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(sa.Column("token_lifetime", sa.Integer(), nullable=False, server_default="600"))
        batch.add_column(
            sa.Column("runbook_subjects", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("azure_tenant_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("azure_client_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("azure_authority_host", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("aws_role_arn", sa.String(length=2048), nullable=True))
        batch.add_column(sa.Column("gcp_audience", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("gcp_service_account", sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_groups") as batch:
        for column in (
            "gcp_service_account",
            "gcp_audience",
            "aws_role_arn",
            "azure_authority_host",
            "azure_client_id",
            "azure_tenant_id",
            "runbook_subjects",
            "token_lifetime",
            "token_audiences",
        ):
            batch.drop_column(column)
