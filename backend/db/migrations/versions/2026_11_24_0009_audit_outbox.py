"""audit outbox: audit_outbox, events written by requests and waiting to be chained

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24

A request inserts its audit event here (one INSERT, no lock); the chainer moves rows
into audit_events in batches under the chain head's lock (backend/audit/chainer.py).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_outbox",
        # BIGINT on PostgreSQL (a sequence); INTEGER on SQLite, where only an INTEGER
        # primary key is the auto-assigned rowid.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("ts", TS, nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("user_id", sa.Integer),
        sa.Column("user_email", sa.String(320)),
        sa.Column("team", sa.String(120)),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("expert", sa.String(32)),
        sa.Column("reason", sa.String(32)),
        # json, not jsonb, as in audit_events: the payload must read back to the same bytes.
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("prompt", sa.Text),
        sa.Column("answer", sa.Text),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(40), nullable=False),
        sa.Column("seal", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    # Events still pending here are lost by a downgrade: chain them first
    # (`expertgate audit chain`).
    op.drop_table("audit_outbox")
