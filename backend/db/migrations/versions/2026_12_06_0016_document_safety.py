"""document safety: per-chunk safety scores, a per-document summary, quarantine release

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-06

Ingestion scores every chunk with the input safety model (backend/knowledge/safety.py):
``chunks.safety_category`` / ``safety_score`` / ``safety_model``; the document keeps a
summary (``documents.safety``, JSON) and, under the ``quarantine`` policy, who released
it. All nullable: rows from before are scored when their domain's index is next built.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chunks", sa.Column("safety_category", sa.String(32)))
    op.add_column("chunks", sa.Column("safety_score", sa.Float))
    op.add_column("chunks", sa.Column("safety_model", sa.String(64)))
    op.add_column("documents", sa.Column("safety", sa.JSON))
    op.add_column("documents", sa.Column("safety_released_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("documents") as batch:
        batch.add_column(
            sa.Column(
                "safety_released_by",
                sa.Integer,
                sa.ForeignKey("users.id", ondelete="SET NULL", name="fk_documents_safety_released_by"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_constraint("fk_documents_safety_released_by", type_="foreignkey")
        batch.drop_column("safety_released_by")
        batch.drop_column("safety_released_at")
        batch.drop_column("safety")
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("safety_model")
        batch.drop_column("safety_score")
        batch.drop_column("safety_category")
