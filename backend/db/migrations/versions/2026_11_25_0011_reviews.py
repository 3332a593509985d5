"""reviews: high-risk answers queued for a person (issue 22, docs/review.md)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25

One row per answer an expert's ``review`` policy sent to the queue, written in the
transaction of its exchange; the held message is ``message_id``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column(
            "conversation_id", sa.String(36), sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("asker_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("expert", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("delivery", sa.String(24), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("draft", sa.Text, nullable=False),
        sa.Column("grounding", sa.JSON),
        sa.Column("citations", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("final_text", sa.Text),
        sa.Column("reviewer_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("reviewer_email", sa.String(320)),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_reviews_request_id", "reviews", ["request_id"])
    op.create_index("ix_reviews_conversation_id", "reviews", ["conversation_id"])
    op.create_index("ix_reviews_expert", "reviews", ["expert"])
    op.create_index("ix_reviews_status_created", "reviews", ["status", "created_at"])


def downgrade() -> None:
    op.drop_table("reviews")
