"""How a request's writes commit: :class:`Writes`, one small interface, two ways.

A unit of work is ``unit(session, rows)``: it runs its statements on ``session`` and may
leave plain INSERTs in ``rows`` (:class:`Rows`), executed at the end of the transaction,
one executemany per statement. The chat exchange (conversation, messages, audit outbox
row, safety flag) is written this way.

- :class:`OwnTransaction` (the default): each unit in an ordinary transaction of its
  own. What a reader expects; nothing shared between requests.
- backend/db/group_commit.py's ``GroupCommit`` (``EXPERTGATE_GROUP_COMMIT=true``): the
  units of concurrent requests share one transaction and their rows one executemany
  per statement; on PostgreSQL the batch and its COMMIT go as one pipeline. It pays only
  under heavy concurrent write load on PostgreSQL; docs/load.md has the measurement.

Either way a caller hears of success only after the COMMIT that holds its rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import Any, Protocol, TypeVar

from sqlalchemy import Insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import Base
from backend.db.session import Database

T = TypeVar("T")


class Rows:
    """INSERTs left for the end of a transaction: one executemany per statement."""

    def __init__(self) -> None:
        self._rows: dict[Insert, list[Mapping[str, Any]]] = {}

    def add(self, statement: Insert, *rows: Mapping[str, Any]) -> None:
        """Queue ``rows`` for ``statement`` (a prebuilt statement: rows of one statement
        must name the same columns)."""
        self._rows.setdefault(statement, []).extend(rows)

    def in_order(self) -> list[tuple[Insert, list[Mapping[str, Any]]]]:
        """What is queued, parents before children (foreign keys)."""
        return [(statement, self._rows[statement]) for statement in sorted(self._rows, key=_table_rank)]

    def clear(self) -> None:
        self._rows.clear()

    async def flush(self, session: AsyncSession) -> None:
        """Execute what is queued, parents before children."""
        for statement, rows in self.in_order():
            await session.execute(statement, rows)
        self.clear()


@cache
def _ranks() -> dict[str, int]:
    return {table.name: i for i, table in enumerate(Base.metadata.sorted_tables)}


def _table_rank(statement: Insert) -> int:
    return _ranks().get(statement.table.name, len(_ranks()))  # type: ignore[attr-defined]


Unit = Callable[[AsyncSession, Rows], Awaitable[Any]]


class Writes(Protocol):
    async def run(self, unit: Callable[[AsyncSession, Rows], Awaitable[T]]) -> T:
        """Run ``unit(session, rows)`` and commit; its result once committed. Raises what
        ``unit`` raised or the database error that failed its transaction."""
        ...

    async def aclose(self) -> None:
        """Wait for what is in flight (at shutdown)."""
        ...


class OwnTransaction:
    """Each unit in an ordinary transaction of its own (the default)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def run(self, unit: Callable[[AsyncSession, Rows], Awaitable[T]]) -> T:
        async with self._db.transaction() as session:
            rows = Rows()
            result = await unit(session, rows)
            await rows.flush(session)
            return result

    async def aclose(self) -> None:
        return None
