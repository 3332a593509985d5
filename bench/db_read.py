"""What one single-statement read costs through the project's Database, by how it is made.

    .venv/bin/python -m bench.db_read [--reads 2000]

Against PostgreSQL (EXPERTGATE_TEST_PG, default postgresql://postgres@127.0.0.1:5432/test),
8 concurrent readers, ``SELECT 1`` each time:

- ``session, ping per checkout``: an ORM session (implicit BEGIN, ROLLBACK at close) from a
  pool with SQLAlchemy's ``pool_pre_ping`` (a liveness round trip per checkout): how the
  retrieval passages were read before issue 10's third round;
- ``session``: the same from ``Database`` (pooled connections pinged only after 2 s idle);
- ``Database.read()``: an autocommit connection, one round trip.

Prints CPU-microseconds per read and writes bench/results/db_read.json. Reported, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker, create_async_engine

from backend.db.session import Database

OUT = Path(__file__).resolve().parent / "results" / "db_read.json"
PG = os.environ.get("EXPERTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
URL = PG.replace("postgresql://", "postgresql+psycopg://", 1)
SELECT_ONE = text("SELECT 1")


async def cpu_us_per_read(read: Callable[[], Awaitable[object]], reads: int, concurrency: int = 8) -> float:
    for _ in range(50):
        await read()

    async def reader() -> None:
        for _ in range(reads // concurrency):
            await read()

    started = time.process_time()
    await asyncio.gather(*(reader() for _ in range(concurrency)))
    return round((time.process_time() - started) * 1e6 / reads, 1)


def via(open_: Callable[[], AbstractAsyncContextManager[AsyncSession | AsyncConnection]]) -> Callable[[], Awaitable[object]]:
    async def read() -> object:
        async with open_() as conn:
            return (await conn.execute(SELECT_ONE)).scalar()

    return read


async def run(reads: int) -> dict[str, float]:
    pinged = create_async_engine(URL, pool_pre_ping=True, pool_size=10)
    sessions = async_sessionmaker(pinged)
    db = Database(URL)
    try:
        return {
            "session, ping per checkout": await cpu_us_per_read(via(sessions), reads),
            "session": await cpu_us_per_read(via(db.session), reads),
            "Database.read()": await cpu_us_per_read(via(db.read), reads),
        }
    finally:
        await pinged.dispose()
        await db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.reads))
    OUT.write_text(json.dumps({"cpu_us_per_read": results, "reads": args.reads, "concurrency": 8}, indent=2) + "\n")
    for name, us in results.items():
        print(f"{name:28s} {us:7.1f} CPU-us/read")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
