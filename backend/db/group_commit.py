"""Group commit: the writes of concurrent requests share one transaction.

Every chat request ends with a small write (the exchange and its audit event). Done one
transaction per request, most of its cost is not the INSERTs but the transaction around
them: a pool checkout (with its liveness ping), BEGIN, COMMIT with its WAL flush, the
connection's reset. Under load the load profile showed that share as the largest piece of
the pass-through path (docs/load.md).

:meth:`GroupCommit.run` queues a unit of work and returns when it has committed. One
drain task at a time takes what is queued (at most ``max_batch``), runs the units one after
another in one transaction and commits; units that arrive meanwhile go in the next batch.
With one request at a time a batch holds one unit and nothing waits for company: the
latency is that of a plain transaction. Durability is unchanged: a caller hears of success
only after the COMMIT that holds its rows.

A unit may also leave plain INSERTs in the batch's :class:`Rows` instead of executing
them: after the last unit has run, each statement is executed once with every unit's
rows (one executemany: psycopg sends the rows in one pipelined round trip), tables in
foreign-key order. The chat exchange does so for its conversation, messages and audit
outbox rows, so a batch of N requests costs three INSERTs, not 3N.

A unit that raises spoils its batch's transaction, so a failed batch of several units is
rolled back and each unit is run again in a transaction of its own: the one that fails
gets its error, the others commit. A unit must therefore be safe to run twice when its
first run was rolled back (no side effects outside the session, or idempotent ones).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import Base
from backend.db.session import Database

log = logging.getLogger(__name__)
T = TypeVar("T")


class Rows:
    """INSERTs left for the end of a transaction: one executemany per statement."""

    def __init__(self) -> None:
        self._rows: dict[Insert, list[Mapping[str, Any]]] = {}

    def add(self, statement: Insert, *rows: Mapping[str, Any]) -> None:
        """Queue ``rows`` for ``statement`` (a prebuilt statement: rows of one statement
        must name the same columns)."""
        self._rows.setdefault(statement, []).extend(rows)

    async def flush(self, session: AsyncSession) -> None:
        """Execute what is queued, parents before children (foreign keys)."""
        for statement in sorted(self._rows, key=_table_rank):
            await session.execute(statement, self._rows[statement])
        self._rows.clear()


@cache
def _ranks() -> dict[str, int]:
    return {table.name: i for i, table in enumerate(Base.metadata.sorted_tables)}


def _table_rank(statement: Insert) -> int:
    return _ranks().get(statement.table.name, len(_ranks()))  # type: ignore[attr-defined]


Unit = Callable[[AsyncSession, Rows], Awaitable[Any]]


class GroupCommit:
    """Runs units of work from concurrent callers in shared transactions (one process)."""

    def __init__(self, db: Database, *, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._db = db
        self._max_batch = max_batch
        self._queue: list[tuple[Unit, asyncio.Future[Any]]] = []
        self._drain: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed or tried (for tests and the bench)
        self.units = 0

    async def run(self, unit: Callable[[AsyncSession, Rows], Awaitable[T]]) -> T:
        """Run ``unit(session, rows)`` in a shared transaction; return its result once
        committed (with the rows it left in ``rows``).

        Raises what ``unit`` raised (its own transaction rolled back) or what the
        database raised on commit.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((unit, future))
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_queue())
        return await future

    async def _drain_queue(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._commit(batch)
                except BaseException:  # cancelled (shutdown): no caller may wait forever
                    interrupted = RuntimeError("the write was interrupted before it committed")
                    for _, future in batch + self._queue:
                        _settle(future, exc=interrupted)
                    self._queue.clear()
                    raise
        finally:
            self._drain = None

    async def _commit(self, batch: list[tuple[Unit, asyncio.Future[Any]]]) -> None:
        self.batches += 1
        self.units += len(batch)
        try:
            results = []
            rows = Rows()
            async with self._db.transaction() as session:
                for unit, _ in batch:
                    results.append(await unit(session, rows))
                await rows.flush(session)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.debug("a batch of %d writes failed (%s); writing each alone", len(batch), exc)
            for unit, future in batch:
                await self._commit_alone(unit, future)
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    async def _commit_alone(self, unit: Unit, future: asyncio.Future[Any]) -> None:
        try:
            rows = Rows()
            async with self._db.transaction() as session:
                result = await unit(session, rows)
                await rows.flush(session)
        except Exception as exc:
            _settle(future, exc=exc)
        else:
            _settle(future, result=result)


def _settle(future: asyncio.Future[Any], *, result: object = None, exc: BaseException | None = None) -> None:
    """Hand the outcome to a caller still waiting (one that was cancelled is not)."""
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
