"""pollers: pollers, the items they have seen, the log of their polls; workflows.poller;
the log of retention clean-ups

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.add_column(sa.Column("poller", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_workflows_poller", ["poller"], unique=False)
    op.create_table(
        "cleanups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("cutoff", TIME, nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cleanups_at", "cleanups", ["at"])
    op.create_table(
        "pollers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("cursor", JSON, nullable=True),
        sa.Column("schedule_from", TIME, nullable=True),
        sa.Column("last_slot", TIME, nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("retry_after", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_pollers_schedule_from", "pollers", ["schedule_from"])
    op.create_table(
        "poller_items",
        sa.Column("poller_id", sa.String(length=32), nullable=False),
        sa.Column("item_id", sa.String(length=500), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=True),
        sa.Column("seen_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["poller_id"], ["pollers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("poller_id", "item_id"),
    )
    op.create_table(
        "polls",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("poller_id", sa.String(length=32), nullable=False),
        sa.Column("slot", TIME, nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("items_seen", sa.Integer(), nullable=False),
        sa.Column("items_new", sa.Integer(), nullable=False),
        sa.Column("cursor_before", JSON, nullable=True),
        sa.Column("cursor_after", JSON, nullable=True),
        sa.Column("events", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["poller_id"], ["pollers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_polls_poller_started", "polls", ["poller_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_polls_poller_started", table_name="polls")
    op.drop_table("polls")
    op.drop_table("poller_items")
    op.drop_index("ix_pollers_schedule_from", table_name="pollers")
    op.drop_table("pollers")
    op.drop_index("ix_cleanups_at", table_name="cleanups")
    op.drop_table("cleanups")
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.drop_index("ix_workflows_poller")
        batch_op.drop_column("poller")
