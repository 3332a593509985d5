"""Group commit: the writes of concurrent requests share one transaction.

Every chat request ends with a small write (the exchange and its audit event). Done one
transaction per request, most of its cost is not the INSERTs but the transaction around
them: a pool checkout, BEGIN, COMMIT with its WAL flush, the connection's reset. Under
load the profile showed that share as the largest piece of the pass-through path
(docs/load.md).

:meth:`GroupCommit.run` queues a unit of work and returns when it has committed. One
drain task at a time takes what is queued (at most ``max_batch``), runs the units one after
another in one transaction and commits; units that arrive meanwhile go in the next batch.
With one request at a time a batch holds one unit and nothing waits for company: the
latency is that of a plain transaction. Durability is unchanged: a caller hears of success
only after the COMMIT that holds its rows. A caller that is cancelled while waiting does
not cancel its write: it may still commit (whole, with its batch).

A unit may also leave plain INSERTs in the batch's :class:`Rows` instead of executing
them: after the last unit has run, each statement is executed once with every unit's
rows (one executemany: psycopg sends the rows in one pipelined round trip), tables in
foreign-key order. The chat exchange does so for its conversation, messages and audit
outbox rows, so a batch of N new conversations costs three INSERTs, not 3N (a follow-up
adds its ownership-checking UPDATE). On PostgreSQL the BEGIN, those INSERTs and the COMMIT
go to the server as one pipeline (psycopg's pipeline mode) with one Sync: one round trip
for the batch where sending them one by one took five (BEGIN, three INSERTs, COMMIT).

When a batch fails its transaction is rolled back, and then:

- a unit raised an error of its own (not a database error: NotFound for someone else's
  conversation, a payload that is not JSON): that unit gets it; the others go again, as
  the next batch;
- a statement failed (a constraint, a deadlock) and the culprit is not known: each unit
  goes again in a transaction of its own, so only the one that fails gets an error;
- the COMMIT itself failed, or the database could not be reached: every unit of the
  batch gets the error, with no replay (a COMMIT whose reply was lost may have
  committed; replaying it could write twice). In a pipeline, an error the server reports
  (an INSERT or the COMMIT refused) means nothing committed, so it counts as a failed
  statement; a connection lost during the pipeline counts as unreachable.

A unit must therefore be safe to run again after its first run was rolled back (no side
effects outside the session, or idempotent ones).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import ColumnDefault, Insert
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.session import Database
from backend.db.writes import Rows, Unit

log = logging.getLogger(__name__)
T = TypeVar("T")


async def commit_pipelined(rows: Rows, session: AsyncSession) -> None:
    """Execute what ``rows`` holds and COMMIT the session's transaction, in one psycopg
    pipeline with a single Sync (PostgreSQL only): one round trip. What the session
    holds unflushed goes first.

    psycopg on its own would sync twice more: after the BEGIN it sends before the
    first statement, and on leaving the pipeline after its ``commit()``. So when the
    transaction has not started yet (nothing was flushed), the connection is put in
    autocommit for the pipeline and the BEGIN is queued like any statement; the
    COMMIT is always queued as a statement. The pipeline's one Sync comes when it is
    left. Afterwards the connection is back as it was (autocommit off, and rolled
    back when the server refused something).

    The statements are SQLAlchemy's, compiled once per statement and set of columns;
    as SQLAlchemy would, a column the rows leave out gets its Python-side default
    (a value, or a callable taking no argument) and the column types process the
    parameters. Errors are raised as SQLAlchemy's DBAPIError subclasses, with
    ``connection_invalidated`` when the connection was lost (then it is also taken
    out of the pool).
    """
    await session.flush()
    conn = await session.connection()
    driver = cast("psycopg.AsyncConnection[Any]", (await conn.get_raw_connection()).driver_connection)
    begin = driver.info.transaction_status == TransactionStatus.IDLE
    try:
        if begin:
            await driver.set_autocommit(True)
        try:
            async with driver.pipeline(), driver.cursor() as cursor:
                if begin:
                    await cursor.execute(_begin_command(driver))
                for statement, queued in rows.in_order():
                    compiled = _compiled(statement, tuple(queued[0]), conn.dialect)
                    await cursor.executemany(compiled.sql, [compiled.params(row) for row in queued])
                await cursor.execute(b"COMMIT")
        except psycopg.Error:
            if begin and not (driver.broken or driver.closed):
                await driver.rollback()  # a refused statement left the block aborted
                await driver.set_autocommit(False)
            raise
        except BaseException:
            if begin:
                await driver.close()  # interrupted mid-pipeline: its state is unknown
            raise
        if begin:
            await driver.set_autocommit(False)
    except psycopg.Error as exc:
        lost = driver.broken or driver.closed
        if lost:
            await conn.invalidate(exc)
        raise DBAPIError.instance(
            "(pipelined group commit)", None, exc, psycopg.Error, connection_invalidated=lost
        ) from exc
    finally:
        rows.clear()



def _begin_command(driver: psycopg.AsyncConnection[Any]) -> bytes:
    """The BEGIN psycopg itself would send, with the connection's transaction settings."""
    parts = ["BEGIN"]
    if driver.isolation_level is not None:
        parts.append(f"ISOLATION LEVEL {driver.isolation_level.name.replace('_', ' ')}")
    if driver.read_only is not None:
        parts.append("READ ONLY" if driver.read_only else "READ WRITE")
    if driver.deferrable is not None:
        parts.append("DEFERRABLE" if driver.deferrable else "NOT DEFERRABLE")
    return " ".join(parts).encode()


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One INSERT as psycopg runs it: its SQL and how a row becomes its parameters."""

    sql: str
    compiled: Compiled
    defaults: tuple[tuple[str, ColumnDefault], ...]  # columns the rows leave out
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def params(self, row: Mapping[str, Any]) -> dict[str, Any]:
        params = dict(self.compiled.construct_params(row) or {})
        for name, default in self.defaults:
            params[name] = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
        for name, process in self.processors:
            params[name] = process(params[name])
        return params


# Keyed by prebuilt module-level statements and their column sets: a handful per process.
_COMPILED: dict[tuple[Insert, tuple[str, ...], str], _Compiled] = {}


def _compiled(statement: Insert, columns: tuple[str, ...], dialect: Dialect) -> _Compiled:
    key = (statement, columns, dialect.name)
    found = _COMPILED.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect, column_keys=list(columns), for_executemany=True)
        defaults = []
        for column in compiled.insert_prefetch:  # type: ignore[attr-defined]
            if column.key in columns:
                continue
            if not isinstance(column.default, ColumnDefault) or column.default.is_clause_element:
                raise ValueError(f"{statement.table}.{column.key}: a pipelined INSERT sends Python-side defaults only")  # type: ignore[attr-defined]
            defaults.append((column.key, column.default))
        processors = []
        for bind, name in compiled.bind_names.items():  # type: ignore[attr-defined]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((name, process))
        found = _COMPILED[key] = _Compiled(compiled.string, compiled, tuple(defaults), tuple(processors))
    return found


@dataclass(slots=True)
class _Pending:
    unit: Unit
    future: asyncio.Future[Any]
    alone: bool = False  # replayed after a batch failed: in a transaction of its own


class GroupCommit:
    """Runs units of work from concurrent callers in shared transactions (one process)."""

    def __init__(self, db: Database, *, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._db = db
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._drain: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed or tried (for tests and the bench)
        self.units = 0

    async def run(self, unit: Callable[[AsyncSession, Rows], Awaitable[T]]) -> T:
        """Run ``unit(session, rows)`` in a shared transaction; return its result once
        committed (with the rows it left in ``rows``).

        Raises what ``unit`` raised, or the database error that failed its transaction
        (see the module docstring for which units of a batch get which error).
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(unit, future))
        if self._drain is None:
            # A context of its own: the drain must not carry the first caller's request
            # id or trace span into every later batch's logs and spans.
            self._drain = asyncio.create_task(self._drain_queue(), context=contextvars.Context())
        return await future

    async def aclose(self) -> None:
        """Wait until what is queued has committed or failed (at shutdown)."""
        while self._drain is not None:
            await asyncio.shield(self._drain)

    def _next_batch(self) -> list[_Pending]:
        if self._queue[0].alone:
            return [self._queue.pop(0)]
        size = 0
        while size < min(self._max_batch, len(self._queue)) and not self._queue[size].alone:
            size += 1
        batch = self._queue[:size]
        del self._queue[:size]
        return batch

    async def _drain_queue(self) -> None:
        try:
            while self._queue:
                batch = self._next_batch()
                try:
                    await self._commit(batch)
                except BaseException:  # cancelled (shutdown): no caller may wait forever
                    interrupted = RuntimeError("the write was interrupted and may not have committed")
                    for pending in batch + self._queue:
                        _settle(pending.future, exc=interrupted)
                    self._queue.clear()
                    raise
        finally:
            self._drain = None

    async def _commit(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.units += len(batch)
        results: list[Any] = []
        failed_at: int | None = None  # the unit running when the batch failed, if any
        committing = False
        try:
            rows = Rows()
            async with self._db.transaction() as session:
                for index, pending in enumerate(batch):
                    failed_at = index
                    results.append(await pending.unit(session, rows))
                failed_at = None
                if self._db.pipelines:
                    await commit_pipelined(rows, session)  # leaving the block has nothing to do
                else:
                    await rows.flush(session)
                committing = True  # leaving the block commits
        except Exception as exc:
            self._after_failure(batch, exc, failed_at, committing)
            return
        for pending, result in zip(batch, results, strict=True):
            _settle(pending.future, result=result)

    def _after_failure(self, batch: list[_Pending], exc: Exception, failed_at: int | None, committing: bool) -> None:
        """The rule of the module docstring: who gets ``exc``, who goes again."""
        if len(batch) == 1 or committing or _unreachable(exc):
            for pending in batch:
                _settle(pending.future, exc=exc)
            return
        if failed_at is not None and not isinstance(exc, DBAPIError):
            _settle(batch[failed_at].future, exc=exc)
            self._queue[:0] = batch[:failed_at] + batch[failed_at + 1 :]
            return
        log.debug("a batch of %d writes failed (%s); writing each alone", len(batch), exc)
        self._queue[:0] = [_Pending(p.unit, p.future, alone=True) for p in batch]


def _unreachable(exc: Exception) -> bool:
    """The database could not be reached (pool timeout, connection lost)."""
    return isinstance(exc, PoolTimeout) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _settle(future: asyncio.Future[Any], *, result: object = None, exc: BaseException | None = None) -> None:
    """Hand the outcome to a caller still waiting (one that was cancelled is not)."""
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
