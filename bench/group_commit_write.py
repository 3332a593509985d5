"""One chat exchange written through the group commit on PostgreSQL, one at a time.

    .venv/bin/python -m bench.group_commit_write [--writes 400] [--blocks 4] [--out PATH]

Against a fresh database on the PostgreSQL of EXPERTGATE_TEST_PG (default
postgresql://postgres@127.0.0.1:5432/test; dropped afterwards), the write a chat request
ends with (``ConversationService.record`` leaving a new conversation and its two
messages in the batch's rows) goes through ``GroupCommit.run`` with nothing else queued:
a batch of one, the latency a lightly loaded server sees. Two spacings, alternating in
blocks so that drift hits both: back to back, and 40 ms apart (what one of two worker
processes sees at 25 requests/s, the overhead goal's rate, where the machine idles
between requests). Prints p50/p99 and CPU-ms per write and writes
bench/results/group_commit_write.json. Reported, never asserted.

To compare two versions of the code, run it twice with PYTHONPATH set to each checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession

from backend.chat.exchanges import ConversationService, Exchange
from backend.db.group_commit import GroupCommit
from backend.db.models import User
from backend.db.session import Database, migrate
from backend.db.writes import Rows
from backend.principal import Principal

OUT = Path(__file__).resolve().parent / "results" / "group_commit_write.json"
PG = os.environ.get("EXPERTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
GAPS_S = {"back to back": 0.0, "40 ms apart": 0.04}
ANN = Principal(1, "ann@example.com", None, frozenset(), frozenset())


async def run(url: str, writes: int, blocks: int) -> dict[str, dict[str, float]]:
    db = Database(url)
    async with db.transaction() as session:
        session.add(User(id=ANN.user_id, email=ANN.email))
    commits = GroupCommit(db)
    count = 0

    async def unit(session: AsyncSession, rows: Rows) -> str:
        nonlocal count
        count += 1
        exchange = Exchange(f"req-{count}", f"question {count}", f"answer {count}", "general", {}, 12, 34)
        return await ConversationService(session).record(ANN, None, exchange, rows)

    for _ in range(50):  # pool, prepared statements, compiled INSERTs
        await commits.run(unit)
    samples: dict[str, list[float]] = {name: [] for name in GAPS_S}
    cpu: dict[str, float] = dict.fromkeys(GAPS_S, 0.0)
    for _ in range(blocks):
        for name, gap in GAPS_S.items():
            for _ in range(writes // blocks):
                cpu_before, started = time.process_time(), time.perf_counter()
                await commits.run(unit)
                samples[name].append((time.perf_counter() - started) * 1000)
                cpu[name] += time.process_time() - cpu_before
                if gap:
                    await asyncio.sleep(gap)
    await commits.aclose()
    await db.dispose()
    out = {}
    for name, values in samples.items():
        ordered = sorted(values)
        out[name] = {
            "p50_ms": round(statistics.median(ordered), 3),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
            "cpu_ms_per_write": round(cpu[name] * 1000 / len(values), 3),
            "writes": len(values),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=400, help="writes per spacing")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    name = f"eg_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        migrate(url)
        results = asyncio.run(run(url, args.writes, args.blocks))
    finally:
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    payload = {"results": results, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    for spacing, r in results.items():
        print(f"{spacing:14s} p50 {r['p50_ms']:6.3f} ms  p99 {r['p99_ms']:6.3f} ms  {r['cpu_ms_per_write']:6.3f} CPU-ms/write")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
