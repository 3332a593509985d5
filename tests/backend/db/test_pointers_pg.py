"""Version pointers on PostgreSQL: replicas poll them often, over one kept connection."""

from __future__ import annotations

import psycopg

from backend.db.pointers import INDEX, SqlPointers
from backend.db.session import migrate
from backend.settings import to_sync_url


def _sessions(url: str) -> int:
    """Connections ever opened to the database at ``url`` (PostgreSQL's own count)."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(to_sync_url(url).replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def test_polls_reuse_one_connection_and_survive_its_loss(pg_url: str) -> None:
    migrate(pg_url)
    writer, reader = SqlPointers(pg_url, INDEX), SqlPointers(pg_url, INDEX)
    writer.set("legal", "v1", None, "abc")
    assert reader.get("legal") == ("v1", "abc")
    before = _sessions(pg_url)
    for _ in range(20):
        assert reader.get("legal") == ("v1", "abc")
    # 20 polls: our checks above opened 2 connections (one per _sessions call), the
    # polls none. Without a pool each poll was a new PostgreSQL backend.
    assert _sessions(pg_url) - before <= 2

    # The kept connection is killed (a database restart, an idle timeout): the next poll
    # notices before using it and answers from a fresh one.
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(to_sync_url(pg_url).replace("+psycopg", ""), autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    writer.set("legal", "v2", None, "def")
    assert reader.get("legal") == ("v2", "def")
