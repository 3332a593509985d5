"""The connection pool on real PostgreSQL: connections idle past the window are checked
before use (a dead one is replaced unseen); recently used ones are handed out as they are."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from backend.db.session import PING_AFTER_IDLE_S, Database
from backend.settings import to_async_url
from tests.services import PG_ADMIN

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def backend_pid(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def terminate(pid: int) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_an_idle_dead_connection_is_replaced_before_use(pg_url: str) -> None:
    now = [1000.0]
    db = Database(to_async_url(pg_url), clock=lambda: now[0])
    try:
        first = await backend_pid(db)
        terminate(first)  # e.g. a database restart, or a proxy's idle timeout
        now[0] += PING_AFTER_IDLE_S + 1
        assert await backend_pid(db) != first  # no error reached the caller
    finally:
        await db.dispose()


async def test_a_recently_used_connection_is_not_pinged(pg_url: str) -> None:
    db = Database(to_async_url(pg_url))
    try:
        first = await backend_pid(db)
        terminate(first)
        # Inside the window the dead connection is handed out unchecked: its first
        # statement fails, the pool drops it, and the next checkout gets a fresh one.
        with pytest.raises(Exception, match=r"terminat|closed|connection"):
            await backend_pid(db)
        assert await backend_pid(db) != first
    finally:
        await db.dispose()
