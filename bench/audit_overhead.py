"""What the audit trail adds to a chat request's write path, on SQLite and PostgreSQL.

For each database, the transaction the pipeline runs when an answer is done
(``ChatPipeline._record``: the conversation and its two messages) is written N times
sequentially in four variants, alternating in blocks of 20 in one process so that
drift hits all of them:

- ``baseline``: the conversation rows only;
- ``outbox``: plus the audit event as the API writes it now (deferred AuditTrail: the
  event built — redaction, canonical JSON, digests, seal — and one INSERT into
  ``audit_outbox``). No chainer runs during the block: what the request itself pays;
- ``outbox+chainer``: the same while this process's AuditChainer runs beside it, as in
  the API (its chaining competes for the event loop, the CPU and, on SQLite, the
  write lock);
- ``inline``: plus the full append in the same transaction (outbox row, head lock,
  chained), which is what the response path paid before the outbox and what CLI
  commands still do.

Then: the lag from an outbox commit until the background chainer has chained it; C
concurrent writers (throughput); the chainer's cost per event when it drains a
backlog in batches; API key authentication with and without the key cache. The PII
scan of stage 2 is timed too.

    .venv/bin/python -m bench.audit_overhead [--n 400] [--concurrency 16]

Writes bench/results/audit_overhead.json. Never fails on a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from backend.audit.chain import ChainKey
from backend.audit.chainer import WINDOW_S, AuditChainer
from backend.audit.chat import ChatTrace, chat_entry
from backend.audit.writer import AuditTrail
from backend.chat.exchanges import ConversationService, Exchange
from backend.db.models import AuditOutbox
from backend.db.session import Database, migrate
from backend.guard.policy import PiiGuard
from backend.identity.keycache import KeyAuthenticator
from backend.identity.service import IdentityService
from backend.principal import Principal
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


KEY = ChainKey(b"bench-secret-key-0123456789abcdef")
VARIANTS = ("baseline", "outbox", "outbox+chainer", "inline")
BLOCK = 20


class Writer:
    """Writes one stored exchange, with the audit event per variant; returns ms."""

    def __init__(self, db: Database, guard: PiiGuard, principal: Principal) -> None:
        self.db, self.guard, self.principal = db, guard, principal
        self.trails = {
            "outbox": AuditTrail(KEY, "redacted", guard, deferred=True),
            "inline": AuditTrail(KEY, "redacted", guard),
        }

    async def write(self, variant: str) -> float:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        async with self.db.transaction() as session:
            conversation_id = await ConversationService(session).record(
                self.principal, None,
                Exchange(request_id=request_id, user_text=PROMPT, answer_text=ANSWER, expert="legal",
                         route={"expert": "legal"}, prompt_tokens=120, completion_tokens=64),
            )  # fmt: skip
            trail = self.trails.get(variant)
            if trail is not None:
                trace = ChatTrace(
                    request_id=request_id, principal=self.principal, prompt=PROMPT,
                    decision=DECISION, latency_ms={"guard": 0.2, "route": 8.1, "generate": 900.0, "total": 910.0},
                    pii=self.guard.scan([PROMPT]), pii_policy="redact", expert="legal",
                    model="hosted_vllm/Qwen/Qwen3-30B-A3B", upstream_model="Qwen3-30B-A3B",
                    endpoint="http://vllm:8000/v1", usage=Usage(120, 64), answer=ANSWER,
                    finish_reason="stop", conversation_id=conversation_id,
                )  # fmt: skip
                await trail.append(session, chat_entry(trace, trail.redact_free_text))
        return (time.perf_counter() - started) * 1000


async def principal_for(db: Database) -> tuple[Principal, str]:
    async with db.transaction() as session:
        identity = IdentityService(session)
        user = await identity.ensure_user("bench@example.com", team="legal")
        secret = (await identity.create_key(user)).secret
        return Principal(user.id, user.email, "legal", frozenset(), frozenset({"user"})), secret


async def pending(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditOutbox)) or 0)


async def chain_lag(db: Database, writer: Writer, rounds: int = 60) -> dict[str, float]:
    """ms from an outbox write's commit until the background chainer has chained it."""
    lags: list[float] = []
    for _ in range(rounds):
        await writer.write("outbox")
        t0 = time.perf_counter()
        for _ in range(20_000):  # polls the table: the chainer may be another process
            if not await pending(db):
                break
            await asyncio.sleep(0.0005)
        lags.append((time.perf_counter() - t0) * 1000)
    return summary(lags)


async def drain_cost(db: Database, writer: Writer, chainer: AuditChainer, backlog: int = 500) -> dict[str, float]:
    """The chainer's cost per event, draining a backlog written while it was not running."""
    for _ in range(backlog):
        await writer.write("outbox")
    t0 = time.perf_counter()
    chained = await chainer.drain()
    elapsed_ms = (time.perf_counter() - t0) * 1000
    return {"events": chained, "ms_total": round(elapsed_ms, 1), "ms_per_event": round(elapsed_ms / chained, 4)}


async def auth_cost(db: Database, secret: str, rounds: int = 400) -> dict[str, Any]:
    """API key authentication per request: cached (5 s TTL) vs a database read each time."""
    result: dict[str, Any] = {}
    for label, ttl in (("db_read_each_request", 0.0), ("cached_ttl_5s", 5.0)):
        auth = KeyAuthenticator(db, ttl)
        await auth.authenticate(secret)
        lat: list[float] = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await auth.authenticate(secret)
            lat.append((time.perf_counter() - t0) * 1000)
        result[label] = summary(lat)
    return result


@contextlib.asynccontextmanager
async def chainer_running(chainer: AuditChainer) -> AsyncIterator[None]:
    """The chainer's background task, as the API lifespan runs it; drained on exit."""
    task = asyncio.create_task(chainer.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await chainer.settle()


async def run_db(url: str, n: int, concurrency: int, window_s: float) -> dict[str, Any]:
    migrate(url)
    db = Database(url)
    guard = PiiGuard()
    principal, secret = await principal_for(db)
    writer = Writer(db, guard, principal)
    chainer = AuditChainer(db, KEY, writer.trails["outbox"].enqueued, window_s=window_s)

    async def block(variant: str, count: int) -> list[float]:
        if variant == "outbox+chainer":
            async with chainer_running(chainer):
                return [await writer.write("outbox") for _ in range(count)]
        times = [await writer.write(variant) for _ in range(count)]
        await chainer.drain()  # untimed: the next block starts with an empty outbox
        return times

    for variant in VARIANTS:  # warm up pools, statement caches, the page cache
        await block(variant, 20)
    # The unit everything here is made of: one statement's round trip on this machine
    # now (through aiosqlite's thread or psycopg's socket), under whatever load it has.
    round_trips: list[float] = []
    async with db.session() as session:
        for _ in range(200):
            t0 = time.perf_counter()
            await session.execute(text("SELECT 1"))
            round_trips.append((time.perf_counter() - t0) * 1000)
    lat: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(n // BLOCK):
        for variant in VARIANTS:
            lat[variant] += await block(variant, BLOCK)
    base = statistics.median(lat["baseline"])
    sequential: dict[str, Any] = {v: summary(lat[v]) for v in VARIANTS}
    for variant in VARIANTS[1:]:
        sequential[f"{variant}_added_p50_ms"] = round(statistics.median(lat[variant]) - base, 3)
        sequential[f"{variant}_added_p99_ms"] = round(pct(lat[variant], 0.99) - pct(lat["baseline"], 0.99), 3)
    sequential["select_1_round_trip_p50_ms"] = round(statistics.median(round_trips), 3)
    result: dict[str, Any] = {"chainer_window_ms": window_s * 1000, "sequential": sequential}
    async with chainer_running(chainer):
        result["chain_lag"] = await chain_lag(db, writer)

    concurrent: dict[str, Any] = {"concurrency": concurrency}
    for variant in ("baseline", "outbox+chainer", "inline"):
        per_task = max(1, n // concurrency)
        times: list[float] = []

        async def task(variant: str = variant, times: list[float] = times, per_task: int = per_task) -> None:
            for _ in range(per_task):
                times.append(await writer.write(variant.removesuffix("+chainer")))

        started = time.perf_counter()
        if variant == "outbox+chainer":
            async with chainer_running(chainer):
                await asyncio.gather(*(task() for _ in range(concurrency)))
                elapsed = time.perf_counter() - started
        else:
            await asyncio.gather(*(task() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        concurrent[variant] = {**summary(times), "writes_per_s": round(len(times) / elapsed, 1)}
    for variant in ("outbox+chainer", "inline"):
        concurrent[f"{variant}_throughput_ratio"] = round(
            concurrent[variant]["writes_per_s"] / concurrent["baseline"]["writes_per_s"], 3
        )
    result["concurrent"] = concurrent
    result["chainer_drain"] = await drain_cost(db, writer, chainer)
    result["auth"] = await auth_cost(db, secret)
    result["pending_at_end"] = await pending(db)
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
    parser.add_argument("--window-ms", type=float, default=WINDOW_S * 1000, help="the chainer's batching window")
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
        result["sqlite"] = asyncio.run(
            run_db(f"sqlite+aiosqlite:///{tmp}/bench.db", args.n, args.concurrency, args.window_ms / 1000)
        )
    pg = postgres_url()
    if pg is not None:
        try:
            result["postgresql"] = asyncio.run(
                run_db(to_async_url(pg), args.n, args.concurrency, args.window_ms / 1000)
            )
        finally:
            drop(pg)
    for name in ("sqlite", "postgresql"):
        if name in result:
            s, c, r = result[name]["sequential"], result[name]["concurrent"], result[name]
            print(
                f"{name}: record p50 {s['baseline']['p50_ms']} ms; added p50/p99: outbox "
                f"+{s['outbox_added_p50_ms']}/+{s['outbox_added_p99_ms']} ms, outbox with the chainer "
                f"running +{s['outbox+chainer_added_p50_ms']}/+{s['outbox+chainer_added_p99_ms']} ms, "
                f"inline chained append +{s['inline_added_p50_ms']}/+{s['inline_added_p99_ms']} ms "
                f"(SELECT 1 {s['select_1_round_trip_p50_ms']} ms); chained after p50 "
                f"{r['chain_lag']['p50_ms']} ms, p99 {r['chain_lag']['p99_ms']} ms; drain "
                f"{r['chainer_drain']['ms_per_event']} ms/event; {c['concurrency']} writers: "
                f"{c['baseline']['writes_per_s']} / {c['outbox+chainer']['writes_per_s']} / "
                f"{c['inline']['writes_per_s']} writes/s (baseline / outbox+chainer / inline); auth p50 "
                f"{r['auth']['db_read_each_request']['p50_ms']} -> {r['auth']['cached_ttl_5s']['p50_ms']} ms cached"
            )
    print(f"PII scan of a {result['pii']['prompt_chars']}-char prompt: p50 {result['pii']['scan_p50_ms']} ms")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
