"""GroupCommit: concurrent writes share transactions, and a failing one spoils nobody else's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.group_commit import GroupCommit
from backend.db.models import Team, User
from backend.db.session import Database
from backend.db.writes import Rows


def add_team(name: str, *, fail: bool = False) -> Callable[[AsyncSession, Rows], Awaitable[str]]:
    async def unit(session: AsyncSession, _: Rows) -> str:
        session.add(Team(name=name))
        await session.flush()
        if fail:
            raise ValueError(f"{name} refused")
        return name

    return unit


async def team_names(db: Database) -> set[str]:
    async with db.session() as session:
        return set(await session.scalars(select(Team.name)))


async def test_concurrent_writes_share_transactions(db: Database) -> None:
    writes = GroupCommit(db)
    names = [f"team-{i}" for i in range(20)]
    results = await asyncio.gather(*(writes.run(add_team(n)) for n in names))
    assert results == names
    assert await team_names(db) == set(names)
    assert writes.units == 20
    assert writes.batches == 1  # all twenty were queued before the drain started


async def test_a_unit_that_refuses_fails_alone_and_the_others_go_again(db: Database) -> None:
    writes = GroupCommit(db)
    units = [add_team("a"), add_team("b", fail=True), add_team("c")]
    results = await asyncio.gather(*(writes.run(u) for u in units), return_exceptions=True)
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ValueError) and str(results[1]) == "b refused"
    assert await team_names(db) == {"a", "c"}
    assert writes.batches == 2  # the batch, then the two others together


async def test_a_failed_statement_sends_each_unit_alone(db: Database) -> None:
    writes = GroupCommit(db)
    await writes.run(add_team("taken"))
    units = [add_team("x"), add_team("taken"), add_team("y")]  # a unique name, again
    results = await asyncio.gather(*(writes.run(u) for u in units), return_exceptions=True)
    assert results[0] == "x" and results[2] == "y"
    assert isinstance(results[1], IntegrityError)
    assert await team_names(db) == {"taken", "x", "y"}
    assert writes.batches == 1 + 1 + 3  # the first; the failed batch; each alone


async def test_a_failed_commit_fails_the_whole_batch_without_replay(db: Database) -> None:
    writes = GroupCommit(db)

    async def refused_at_commit(session: AsyncSession, _: Rows) -> str:
        def refuse(_: object) -> None:
            raise RuntimeError("commit refused")

        event.listen(session.sync_session, "before_commit", refuse, once=True)
        return "never"

    units = [add_team("p"), refused_at_commit, add_team("q")]
    results = await asyncio.gather(*(writes.run(u) for u in units), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and str(r) == "commit refused" for r in results)
    assert await team_names(db) == set()
    assert writes.batches == 1  # a COMMIT that may have landed is never replayed


async def test_a_write_alone_rolls_back_on_error(db: Database) -> None:
    writes = GroupCommit(db)
    with pytest.raises(ValueError):
        await writes.run(add_team("solo", fail=True))
    assert await team_names(db) == set()
    assert await writes.run(add_team("after")) == "after"  # the committer is not stuck


async def test_a_cancelled_caller_does_not_stop_the_others(db: Database) -> None:
    writes = GroupCommit(db)
    first = asyncio.create_task(writes.run(add_team("first")))
    gone = asyncio.create_task(writes.run(add_team("gone")))
    last = asyncio.create_task(writes.run(add_team("last")))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == "first" and await last == "last"
    with pytest.raises(asyncio.CancelledError):
        await gone
    # Cancelling a caller does not cancel its write: it was committed with its batch.
    assert await team_names(db) == {"first", "gone", "last"}


def test_a_batch_holds_at_least_one_write(db: Database) -> None:
    with pytest.raises(ValueError):
        GroupCommit(db, max_batch=0)


async def test_rows_left_by_units_are_inserted_once_per_statement_parents_first(db: Database) -> None:
    writes = GroupCommit(db)
    teams, users = insert(Team.__table__), insert(User.__table__)  # type: ignore[arg-type]

    def member(i: int) -> Callable[[AsyncSession, Rows], Awaitable[int]]:
        async def unit(_: AsyncSession, rows: Rows) -> int:
            # The child row is queued before its parent: the flush still sends teams first.
            rows.add(users, {"id": i, "email": f"u{i}@example.com", "team_id": i})
            rows.add(teams, {"id": i, "name": f"t{i}"})
            return i

        return unit

    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert await asyncio.gather(*(writes.run(member(i)) for i in range(1, 9))) == list(range(1, 9))
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 8
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert writes.batches < 8 and len(inserts) == 2 * writes.batches  # one per table per batch
