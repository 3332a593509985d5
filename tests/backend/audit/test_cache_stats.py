"""The dashboard's response-cache figures (AuditStats, ``cache``) over audit events
written by the trail: exact and semantic hits apart, a lookup counted for the expert it
was made for (not the fallback that answered), experts with the cache off said to be
off, events outside the window left out. The same scenario runs on PostgreSQL
(test_cache_stats_pg.py): the JSON paths must read the same in both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.audit.chain import ChainKey
from backend.audit.stats import AuditStats, CacheCounts, Prices, resolve_window
from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.session import Database
from backend.guard.policy import PiiGuard

EXPERTS = ["code", "legal", "support", "general"]
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def counts(
    *,
    lookups: int = 0,
    hits: int = 0,
    exact_hits: int = 0,
    semantic_hits: int = 0,
    misses: int = 0,
    bypassed: int = 0,
    skipped: int = 0,
    hit_rate: float | None = None,
    tokens_saved: int = 0,
) -> CacheCounts:
    """Counts with nothing but what is given."""
    return CacheCounts(lookups, hits, exact_hits, semantic_hits, misses, bypassed, skipped, hit_rate, tokens_saved)


def chat(routed_to: str, cache: dict[str, object] | None, *, answered_by: str | None = None) -> AuditEntry:
    payload: dict[str, object] = {"route": {"expert": answered_by or routed_to, "routed_to": routed_to}}
    if cache is not None:
        payload["cache"] = {"ms": 0.4, **cache}
    return AuditEntry(
        action="chat.completion", outcome=Outcome.for_status(200), status=200,
        actor=Actor(channel="api", user_id=1, email="dana@example.com", team="eng"),
        expert=answered_by or routed_to, reason="fallback" if answered_by else "requested", payload=payload,
    )  # fmt: skip


def hit(match: str, tokens_saved: int) -> dict[str, object]:
    return {
        "status": "hit",
        "match": match,
        "similarity": 1.0,
        "source_request_id": "r-1",
        "tokens_saved": tokens_saved,
    }


async def cache_scenario(db: Database) -> None:
    entries = [
        (NOW - timedelta(hours=30), chat("legal", hit("exact", 999))),  # before the window
        (NOW - timedelta(hours=3), chat("legal", hit("exact", 31))),
        (NOW - timedelta(hours=3), chat("legal", hit("semantic", 20))),
        (NOW - timedelta(hours=2), chat("legal", {"status": "miss"})),
        (
            NOW - timedelta(hours=2),
            chat("legal", {"status": "miss", "rejected": {"forbidden": 1}}, answered_by="general"),
        ),
        (NOW - timedelta(hours=2), chat("legal", {"status": "bypass"})),
        (NOW - timedelta(hours=1), chat("code", {"status": "skipped", "rejected": {"not_first_turn": 1}})),
        (NOW - timedelta(hours=1), chat("support", None)),  # its cache is off: no cache object
        (NOW - timedelta(hours=1), chat("retired", hit("exact", 5))),  # an expert no longer configured
    ]
    times = iter(ts for ts, _ in entries)
    trail = AuditTrail(ChainKey(b"integration-test-secret-key-0123"), "redacted", PiiGuard(), clock=lambda: next(times))
    for _, entry in entries:
        await trail.record(db, entry)

    window = resolve_window(NOW - timedelta(hours=24), NOW, 3600, now=NOW)
    async with db.session() as session:
        stats = await AuditStats(session, EXPERTS, Prices(), cached=["legal", "code", "unknown"]).dashboard(window, [])

    cache = stats.cache
    assert cache.enabled == 2  # a name the registry lacks is not counted as on
    by_name = {e.expert: e for e in cache.experts}
    assert list(by_name) == [*EXPERTS, "retired"]
    assert {name: e.enabled for name, e in by_name.items()} == {
        "code": True, "legal": True, "support": False, "general": False, "retired": False
    }  # fmt: skip
    assert by_name["legal"].counts == counts(
        lookups=4, hits=2, exact_hits=1, semantic_hits=1, misses=2, bypassed=1, skipped=0, hit_rate=0.5, tokens_saved=51
    )
    assert by_name["code"].counts == counts(skipped=1)  # on, but nothing looked up: no hit rate
    assert by_name["general"].counts == counts()  # answered a legal miss; the lookup was legal's
    assert by_name["support"].counts == counts()
    assert by_name["retired"].counts == counts(lookups=1, hits=1, exact_hits=1, hit_rate=1.0, tokens_saved=5)
    assert cache.total == counts(
        lookups=5, hits=3, exact_hits=2, semantic_hits=1, misses=2, bypassed=1, skipped=1, hit_rate=0.6, tokens_saved=56
    )


async def test_cache_figures_from_the_trail(db: Database) -> None:
    await cache_scenario(db)


async def test_no_expert_with_the_cache_on(db: Database) -> None:
    window = resolve_window(NOW - timedelta(hours=1), NOW, 3600, now=NOW)
    async with db.session() as session:
        stats = await AuditStats(session, EXPERTS, Prices()).dashboard(window, [])
    assert stats.cache.enabled == 0
    assert [(e.expert, e.enabled, e.counts) for e in stats.cache.experts] == [(n, False, counts()) for n in EXPERTS]
    assert stats.cache.total == counts()
