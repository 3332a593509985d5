"""Dashboard aggregates on real PostgreSQL: the same SQL (JSON paths, time buckets,
CASE ladders) that runs on SQLite must give the same figures here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.audit.chain import ChainKey
from backend.audit.stats import AuditStats, Prices, resolve_window
from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.session import Database
from backend.guard.policy import PiiGuard

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

EXPERTS = ["code", "legal", "support", "general"]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def chat(
    expert: str, team: str, reason: str, confidence: float, total_ms: float, *, status: int = 200, code: str = ""
) -> AuditEntry:
    payload: dict[str, object] = {
        "route": {"expert": expert, "confidence": confidence},
        "usage": {"prompt_tokens": 10, "completion_tokens": 20},
        "latency_ms": {"guard": 1.0, "route": 5.0, "generate": total_ms - 6, "total": total_ms},
        "fallbacks": [],
    }
    if code:
        payload["error"] = {"code": code, "message": "refused"}
    return AuditEntry(
        action="chat.completion", outcome=Outcome.for_status(status), status=status,
        actor=Actor(channel="api", user_id=1, email="dana@example.com", team=team),
        expert=expert, reason=reason, payload=payload,
    )  # fmt: skip


async def test_dashboard_aggregates_on_postgres(db: Database) -> None:
    # Events 0, 1, 2 and 3 hours before NOW (the trail's clock is injected).
    times = iter([NOW - timedelta(hours=h, minutes=30) for h in (3, 2, 1, 0, 0)])
    trail = AuditTrail(ChainKey(b"integration-test-secret-key-0123"), "redacted", PiiGuard(), clock=lambda: next(times))
    entries = [
        chat("code", "eng", "routed", 0.91, 100),
        chat("code", "eng", "routed", 0.87, 200),
        chat("general", "eng", "low_confidence", 0.31, 300),
        chat("legal", "law", "fallback", 0.55, 400),
        chat("legal", "law", "requested", 1.0, 500, status=429, code="quota_exceeded"),
    ]
    for e in entries:
        await trail.record(db, e)

    window = resolve_window(NOW - timedelta(hours=4), NOW, 3600, now=NOW)
    async with db.session() as session:
        stats = await AuditStats(session, EXPERTS, Prices(1.0, 2.0)).dashboard(window, [])

    series = {s.expert: s.counts for s in stats.traffic.series}
    assert series["code"] == [1, 1, 0, 0] and series["general"] == [0, 0, 1, 0] and series["legal"] == [0, 0, 0, 2]
    o = stats.outcomes
    assert (o.requests, o.abstained, o.fallback, o.quota_rejected, o.errors) == (5, 1, 1, 1, 0)
    assert [b.count for b in stats.confidence] == [0, 0, 0, 1, 0, 1, 0, 0, 1, 2]
    teams = {t.team: t for t in stats.teams}
    assert (teams["eng"].prompt_tokens, teams["eng"].completion_tokens) == (30, 60)
    assert teams["eng"].cost_usd == pytest.approx((30 * 1.0 + 60 * 2.0) / 1000)
    assert teams["law"].quota_rejected == 1
    latency = {(s.expert, s.stage): s for s in stats.latency}
    assert (latency[("all", "total")].p50_ms, latency[("all", "total")].p95_ms) == (300.0, 500.0)
    assert latency[("code", "total")].samples == 2
    assert stats.dead_experts == ["support"]
