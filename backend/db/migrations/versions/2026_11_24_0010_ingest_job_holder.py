"""ingest job holder: ingest_jobs.holder, the process that holds a queued or running job

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24

"host:pid" of the submitter (queued) or runner (running); an API process running jobs
inline resumes at start the jobs whose holder died (backend/knowledge/jobs.py).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ingest_jobs", sa.Column("holder", sa.String(160)))


def downgrade() -> None:
    with op.batch_alter_table("ingest_jobs") as batch:
        batch.drop_column("holder")
