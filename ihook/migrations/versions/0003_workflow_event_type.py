"""workflow event type: the trigger {event_type: ...} as an indexed column

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.add_column(sa.Column("event_type", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_workflows_event_type", ["event_type"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.drop_index("ix_workflows_event_type")
        batch_op.drop_column("event_type")
