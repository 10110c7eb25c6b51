"""workflow schedule: when a schedule trigger started counting and its last fired slot

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.add_column(sa.Column("schedule_from", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_slot", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_workflows_schedule_from", ["schedule_from"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.drop_index("ix_workflows_schedule_from")
        batch_op.drop_column("last_slot")
        batch_op.drop_column("schedule_from")
