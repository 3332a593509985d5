"""Chat exchanges group-committed on real PostgreSQL: new conversations and follow-ups
from concurrent requests share transactions and multi-row INSERTs; a follow-up on someone
else's conversation fails alone and leaves nothing behind. The rows and the COMMIT go as
one psycopg pipeline: Python-side defaults filled, what a unit left in its session
committed with them, a refused INSERT sent alone, a lost connection never replayed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.chat.exchanges import ConversationService, Exchange
from backend.db.group_commit import GroupCommit
from backend.db.models import Conversation, Message, Team, User
from backend.db.session import Database
from backend.db.writes import Rows
from backend.errors import NotFound
from backend.principal import Principal

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def principal(user_id: int) -> Principal:
    return Principal(user_id, f"u{user_id}@example.com", None, frozenset(), frozenset())


def exchange(n: int) -> Exchange:
    return Exchange(f"req-{n}", f"question {n}", f"answer {n}", "general", {"expert": "general"}, 3, 5)


async def test_mixed_exchanges_commit_together_and_a_bad_one_alone(db: Database) -> None:
    async with db.transaction() as session:
        session.add_all([User(id=1, email="u1@example.com"), User(id=2, email="u2@example.com")])
        await session.flush()
        mine = await ConversationService(session).record(principal(1), None, exchange(0))
        theirs = await ConversationService(session).record(principal(2), None, exchange(1))

    writes = GroupCommit(db)

    def record(who: int, conversation: str | None, n: int) -> Callable[[AsyncSession, Rows], Awaitable[str]]:
        async def unit(session: AsyncSession, rows: Rows) -> str:
            return await ConversationService(session).record(principal(who), conversation, exchange(n), rows)

        return unit

    units = [record(1, None, n) for n in range(10, 15)]  # five new conversations
    units += [record(1, mine, 20), record(1, mine, 21)]  # two follow-ups
    units.insert(3, record(1, theirs, 30))  # someone else's conversation
    results = await asyncio.gather(*(writes.run(u) for u in units), return_exceptions=True)

    assert isinstance(results[3], NotFound)
    assert all(isinstance(r, str) for i, r in enumerate(results) if i != 3)
    assert results.count(mine) == 2
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 2 + 5
        mine_messages = await session.scalar(
            select(func.count()).select_from(Message).where(Message.conversation_id == mine)
        )
        assert mine_messages == 2 * 3  # the first exchange and both follow-ups
        assert await session.scalar(select(func.count()).where(Message.request_id == "req-30")) == 0


TEAMS = insert(Team.__table__)  # type: ignore[arg-type]


def team(name: str, *, orm: str | None = None) -> Callable[[AsyncSession, Rows], Awaitable[str]]:
    """A unit leaving a team row without created_at (a Python-side default) and, with
    ``orm``, also adding a team to its session without flushing it."""

    async def unit(session: AsyncSession, rows: Rows) -> str:
        if orm is not None:
            session.add(Team(name=orm))
        rows.add(TEAMS, {"name": name})
        return name

    return unit


async def teams(db: Database) -> dict[str, object]:
    async with db.session() as session:
        return {name: created for name, created in await session.execute(select(Team.name, Team.created_at))}


async def test_pipelined_rows_get_their_defaults_and_commit_with_the_session(db: Database) -> None:
    assert db.pipelines
    writes = GroupCommit(db)
    results = await asyncio.gather(writes.run(team("a")), writes.run(team("b", orm="b-orm")))
    assert results == ["a", "b"] and writes.batches == 1
    stored = await teams(db)
    assert set(stored) == {"a", "b", "b-orm"}
    assert all(created is not None for created in stored.values())  # utcnow, as SQLAlchemy fills it


async def test_a_refused_insert_in_the_pipeline_sends_each_unit_alone(db: Database) -> None:
    writes = GroupCommit(db)
    await writes.run(team("taken"))
    units = [team("x"), team("taken", orm="rides-with-taken"), team("y", orm="rides-with-y")]
    units.append(team("z", orm="taken"))  # its session's object is the duplicate this time
    results = await asyncio.gather(*(writes.run(u) for u in units), return_exceptions=True)
    assert results[0] == "x" and results[2] == "y"
    assert isinstance(results[1], IntegrityError)  # SQLAlchemy's type, as without the pipeline
    assert isinstance(results[3], IntegrityError)
    # A culprit's rows and session objects rolled back together; the others' committed.
    assert set(await teams(db)) == {"taken", "x", "y", "rides-with-y"}
    assert writes.batches == 1 + 1 + 4  # the first; the failed batch; each alone


async def test_a_connection_lost_in_the_pipeline_fails_the_batch_without_replay(db: Database, pg_url: str) -> None:
    writes = GroupCommit(db)
    await writes.run(team("before"))  # the pooled connection, used just now: not pinged at checkout
    with psycopg.connect(pg_url, autocommit=True) as admin:
        others = "datname = current_database() AND pid <> pg_backend_pid()"
        admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")
        for _ in range(100):
            if admin.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {others}").fetchone() == (0,):
                break
            await asyncio.sleep(0.02)
    results = await asyncio.gather(writes.run(team("p")), writes.run(team("q")), return_exceptions=True)
    assert all(isinstance(r, DBAPIError) and r.connection_invalidated for r in results), results
    assert writes.batches == 2  # whether the COMMIT landed is unknown: never replayed
    assert await writes.run(team("after")) == "after"  # the pool replaced the dead connection
    assert set(await teams(db)) == {"before", "after"}


async def test_the_batch_goes_in_one_round_trip_and_leaves_the_connection_transactional(
    db: Database, tmp_path: Path
) -> None:
    writes = GroupCommit(db)
    await writes.run(team("first"))  # opens the pool's only connection
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as out:
        async with db.engine.connect() as conn:  # that same connection, traced by libpq
            pgconn = (await conn.get_raw_connection()).driver_connection.pgconn  # type: ignore[union-attr]
            pgconn.trace(out.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        await asyncio.gather(writes.run(team("a")), writes.run(team("b")))
        pgconn.untrace()
    sent = [line.split("\t")[2:] for line in trace.read_text().splitlines() if line.startswith("F")]
    kinds = [message[0].strip() for message in sent]
    # BEGIN, the two rows' INSERTs and COMMIT are sent before the one Sync, which is last:
    # the client waits for one reply, where psycopg alone would wait for three.
    assert kinds.count("Sync") == 1 and [k for k in kinds if k != "Flush"][-1] == "Sync", kinds
    assert kinds.count("Execute") == 4 and "Query" not in kinds, kinds
    # The connection went back to the pool out of autocommit: a failed transaction on it
    # still rolls back whole.
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            session.add(Team(name="never"))
            await session.flush()
            raise RuntimeError("abandon the transaction")
    assert set(await teams(db)) == {"first", "a", "b"}


async def test_after_a_refused_batch_the_connection_is_transactional_again(db: Database) -> None:
    writes = GroupCommit(db)
    await writes.run(team("taken"))
    with pytest.raises(IntegrityError):
        await writes.run(team("taken"))  # refused inside the pipeline (BEGIN queued by us)
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            session.add(Team(name="never"))
            await session.flush()
            raise RuntimeError("abandon the transaction")
    assert set(await teams(db)) == {"taken"}
