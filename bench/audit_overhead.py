"""What the audit trail adds to a chat request's write path, on SQLite and PostgreSQL.

For each database, the same stored exchange is written N times sequentially, in the
transaction the pipeline uses (``ChatPipeline._record``): the baseline writes the
conversation and its two messages; the audited run also builds the audit event
(chat_entry: redacted prompt/answer, canonical JSON, HMAC) and appends it to the
chain in the same transaction. Then C concurrent writers do the same, to show the
cost of serializing appends on the chain head. The PII scan of stage 2 is timed too.
Baseline and audited runs alternate in blocks, in the same process, so drift hits both.

    .venv/bin/python -m bench.audit_overhead [--n 400] [--concurrency 16]

Writes bench/results/audit_overhead.json. Never fails on a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from backend.audit.chain import ChainKey
from backend.audit.chat import ChatTrace, chat_entry
from backend.audit.writer import AuditTrail
from backend.chat.conversations import ConversationService, Exchange
from backend.db.session import Database, migrate
from backend.guard.policy import PiiGuard
from backend.identity.service import IdentityService
from backend.identity.types import Principal
from backend.settings import to_async_url
from experts.types import Usage
from router.types import Reason, RoutingDecision

OUT = Path(__file__).resolve().parent / "results" / "audit_overhead.json"
PG_ADMIN = os.environ.get("EXPERTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PROMPT = (
    "Our customer Dana Kim (dana.kim@example.com, +1 415 555 0148) says the invoice "
    "INV-2024-0042 was charged twice to her card 4111 1111 1111 1111. What does clause 7.3 "
    "of the master services agreement say about refunds for duplicate charges, and what "
    "should support tell her?"
)
ANSWER = (
    "Clause 7.3 obliges us to refund duplicate charges within 14 days of notice. Tell the "
    "customer the second charge will be reversed to the original card, and open a billing "
    "ticket so finance can confirm the reversal. [1]"
) * 2
DECISION = RoutingDecision(
    expert="legal", confidence=0.81, reason=Reason.ROUTED,
    probabilities={"legal": 0.81, "support": 0.12, "code": 0.04, "general": 0.03},
    top_k=("legal", "support"), router_version="gate-2026-11-23", ood_score=0.74,
)  # fmt: skip


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(pct(ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


class Writer:
    def __init__(self, db: Database, trail: AuditTrail, guard: PiiGuard, principal: Principal) -> None:
        self.db, self.trail, self.guard, self.principal = db, trail, guard, principal

    async def write(self, audited: bool) -> float:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        async with self.db.transaction() as session:
            conversation_id = await ConversationService(session).record(
                self.principal, None,
                Exchange(request_id=request_id, user_text=PROMPT, answer_text=ANSWER, expert="legal",
                         route={"expert": "legal"}, prompt_tokens=120, completion_tokens=64),
            )  # fmt: skip
            if audited:
                trace = ChatTrace(
                    request_id=request_id, principal=self.principal, prompt=PROMPT,
                    decision=DECISION, latency_ms={"guard": 0.2, "route": 8.1, "generate": 900.0, "total": 910.0},
                    pii=self.guard.scan([PROMPT]), pii_policy="redact", expert="legal",
                    model="hosted_vllm/Qwen/Qwen3-30B-A3B", upstream_model="Qwen3-30B-A3B",
                    endpoint="http://vllm:8000/v1", usage=Usage(120, 64), answer=ANSWER,
                    finish_reason="stop", conversation_id=conversation_id,
                )  # fmt: skip
                await self.trail.append(session, chat_entry(trace, self.trail.redact_free_text))
        return (time.perf_counter() - started) * 1000


async def principal_for(db: Database) -> Principal:
    async with db.transaction() as session:
        user = await IdentityService(session).ensure_user("bench@example.com", team="legal")
        return Principal(user.id, user.email, "legal", frozenset(), frozenset({"user"}))


async def run_db(url: str, n: int, concurrency: int) -> dict[str, Any]:
    migrate(url)
    db = Database(url)
    guard = PiiGuard()
    trail = AuditTrail(ChainKey(b"bench-secret-key-0123456789abcdef"), "redacted", guard)
    writer = Writer(db, trail, guard, await principal_for(db))
    for _ in range(20):  # warm up pools, statement caches, the page cache
        await writer.write(False)
        await writer.write(True)
    # The unit everything here is made of: one statement's round trip on this machine
    # now (through aiosqlite's thread or psycopg's socket), under whatever load it has.
    round_trips: list[float] = []
    async with db.session() as session:
        for _ in range(200):
            t0 = time.perf_counter()
            await session.execute(text("SELECT 1"))
            round_trips.append((time.perf_counter() - t0) * 1000)
    base: list[float] = []
    audited: list[float] = []
    block = 20
    for _ in range(n // block):
        base += [await writer.write(False) for _ in range(block)]
        audited += [await writer.write(True) for _ in range(block)]
    result: dict[str, Any] = {
        "sequential": {
            "baseline": summary(base),
            "audited": summary(audited),
            "added_p50_ms": round(statistics.median(audited) - statistics.median(base), 3),
            "added_p99_ms": round(pct(audited, 0.99) - pct(base, 0.99), 3),
            "select_1_round_trip_p50_ms": round(statistics.median(round_trips), 3),
            "added_in_round_trips": round(
                (statistics.median(audited) - statistics.median(base)) / statistics.median(round_trips), 1
            ),
        }
    }
    concurrent: dict[str, Any] = {}
    for label, flag in (("baseline", False), ("audited", True)):
        per_task = max(1, n // concurrency)
        lat: list[float] = []

        async def task(flag: bool = flag, lat: list[float] = lat, per_task: int = per_task) -> None:
            for _ in range(per_task):
                lat.append(await writer.write(flag))

        started = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        concurrent[label] = {**summary(lat), "writes_per_s": round(len(lat) / elapsed, 1)}
    concurrent["concurrency"] = concurrency
    concurrent["throughput_ratio"] = round(
        concurrent["audited"]["writes_per_s"] / concurrent["baseline"]["writes_per_s"], 3
    )
    result["concurrent"] = concurrent
    await db.dispose()
    return result


def pii_cost(rounds: int = 2000) -> dict[str, float]:
    guard = PiiGuard()
    scan: list[float] = []
    redact: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        guard.scan([PROMPT])
        t1 = time.perf_counter()
        guard.redact(PROMPT)
        guard.redact(ANSWER)
        t2 = time.perf_counter()
        scan.append((t1 - t0) * 1000)
        redact.append((t2 - t1) * 1000)
    return {
        "prompt_chars": len(PROMPT),
        "answer_chars": len(ANSWER),
        "scan_p50_ms": round(statistics.median(scan), 4),
        "scan_p99_ms": round(pct(scan, 0.99), 4),
        "redact_prompt_and_answer_p50_ms": round(statistics.median(redact), 4),
    }


def postgres_url() -> str | None:
    try:
        import psycopg

        name = f"eg_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    except Exception as exc:  # the benchmark reports what it could not measure
        print(f"PostgreSQL not measured: {exc}")
        return None


def drop(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400, help="writes per variant")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "n": args.n,
        "pii": pii_cost(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = asyncio.run(run_db(f"sqlite+aiosqlite:///{tmp}/bench.db", args.n, args.concurrency))
    pg = postgres_url()
    if pg is not None:
        try:
            result["postgresql"] = asyncio.run(run_db(to_async_url(pg), args.n, args.concurrency))
        finally:
            drop(pg)
    for name in ("sqlite", "postgresql"):
        if name in result:
            s, c = result[name]["sequential"], result[name]["concurrent"]
            print(
                f"{name}: record p50 {s['baseline']['p50_ms']} -> {s['audited']['p50_ms']} ms "
                f"(+{s['added_p50_ms']} ms = {s['added_in_round_trips']} round trips of {s['select_1_round_trip_p50_ms']} ms), p99 {s['baseline']['p99_ms']} -> {s['audited']['p99_ms']} ms; "
                f"{c['concurrency']} writers: {c['baseline']['writes_per_s']} -> {c['audited']['writes_per_s']} writes/s "
                f"(x{c['throughput_ratio']})"
            )
    print(f"PII scan of a {result['pii']['prompt_chars']}-char prompt: p50 {result['pii']['scan_p50_ms']} ms")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
