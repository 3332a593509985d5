"""safety_flags: requests the input safety check flagged (issue 23, docs/safety.md)

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-06

One row per flagged request, written with the request's audit event; an admin's label
turns it into training data. ``down_revision`` is 0011, the head when this was written
(0012 was announced for the response cache but not yet there): whichever of the two
lands second re-points its ``down_revision`` at the other.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_flags",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("user_email", sa.String(320)),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("expert", sa.String(32), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("scores", sa.JSON, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("excerpt", sa.Text),
        sa.Column("label", sa.String(16)),
        sa.Column("labelled_by", sa.String(320)),
        sa.Column("labelled_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_safety_flags_created", "safety_flags", ["created_at"])
    op.create_index("ix_safety_flags_expert", "safety_flags", ["expert"])
    op.create_index("ix_safety_flags_category", "safety_flags", ["category"])


def downgrade() -> None:
    op.drop_table("safety_flags")
