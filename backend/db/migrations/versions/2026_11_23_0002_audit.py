"""audit: audit_events, audit_chain_head (seeded with the genesis row), api_keys.last_used_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
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
        # json, not jsonb: the stored text must read back to the same canonical bytes.
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("prompt", sa.Text),
        sa.Column("answer", sa.Text),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("content_purged_at", TS),
        sa.Column("alg", sa.String(40), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("hash", name="uq_audit_events_hash"),
    )
    # Few indexes: every one is paid on each append. Filters on action, outcome, team or
    # expert ride on a time range (ts) or a user in practice.
    for column in ("ts", "request_id", "user_id", "user_email"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("last_used_at", TS))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
    op.drop_table("audit_chain_head")
    op.drop_table("audit_events")
