"""runbooks.own_token_subject: a runbook asks for its own token subject (issue 14 point 2)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runbooks") as batch:
        batch.add_column(
            sa.Column("own_token_subject", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Before 0010 a group's runbook_subjects gave every runbook of the group its own subject; now
    # the group only allows it and each runbook asks. Where some group allowed it, every runbook
    # asks, so no job's subject changes (a federated credential made for it keeps matching): in a
    # group that does not allow it, asking changes nothing.
    op.execute(
        "UPDATE runbooks SET own_token_subject = true "
        "WHERE EXISTS (SELECT 1 FROM worker_groups WHERE runbook_subjects = true)"
    )


def downgrade() -> None:
    with op.batch_alter_table("runbooks") as batch:
        batch.drop_column("own_token_subject")
