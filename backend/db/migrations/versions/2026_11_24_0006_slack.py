"""Slack identities and threads: users.slack_user_id, slack_threads, slack_events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("slack_user_id", sa.String(32)))
        batch.create_unique_constraint("uq_users_slack_user_id", ["slack_user_id"])
    op.create_table(
        "slack_threads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("thread_ts", sa.String(32), nullable=False),
        sa.Column("slack_user_id", sa.String(32), nullable=False),
        sa.Column(
            "conversation_id",
            sa.String(36),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("channel_id", "thread_ts", "slack_user_id", name="uq_slack_threads_thread_user"),
    )
    op.create_index("ix_slack_threads_conversation_id", "slack_threads", ["conversation_id"])
    op.create_table(
        "slack_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("received_at", TS, nullable=False),
    )
    op.create_index("ix_slack_events_received_at", "slack_events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_slack_events_received_at", table_name="slack_events")
    op.drop_table("slack_events")
    op.drop_index("ix_slack_threads_conversation_id", table_name="slack_threads")
    op.drop_table("slack_threads")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_slack_user_id", type_="unique")
        batch.drop_column("slack_user_id")
