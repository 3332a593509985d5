"""Dashboard figures computed from the audit trail (the console's Dashboard tab).

Why from the audit trail: every chat request already leaves one event holding what was
decided and measured (route, confidence, stage latencies, tokens, fallbacks, errors;
see chat.py), so the dashboard needs no second bookkeeping that could disagree with it.
This module only reads ``audit_events``; it never touches the write path.

Cost is bounded whatever the trail's size: the window is at most :data:`MAX_WINDOW`
and :data:`MAX_BUCKETS` time buckets long; counts and sums are SQL aggregates that run
the same on SQLite and PostgreSQL; percentiles (which SQLite cannot compute) come from
the latest :data:`LATENCY_SAMPLE` chat events of the window. Breaker states come from
this process's experts service and are per process, like the breakers themselves.
Response-cache figures come from each event's ``payload.cache`` (backend/cache/); which
experts have the cache on comes from the registry the caller passes (experts.yaml now,
not at the time of the events).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Boolean, ColumnElement, Integer, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from backend.audit.chat import CHAT_ACTION
from backend.db.models import AuditEvent
from backend.errors import BadRequest
from experts.resilience import BreakerSnapshot
from router.types import Reason

MAX_WINDOW = timedelta(days=31)
MAX_BUCKETS = 500
LATENCY_SAMPLE = 20_000
# Bucket widths chosen when the caller names none: the smallest giving <= 60 buckets.
AUTO_BUCKETS_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86_400)
STAGES = ("guard", "route", "generate", "total")
ALL_EXPERTS = "all"
CONFIDENCE_BINS = 10
ABSTAIN_REASONS = (str(Reason.LOW_CONFIDENCE), str(Reason.OUT_OF_DOMAIN))
QUOTA_EXCEEDED = "quota_exceeded"
# backend/cache/types.py CacheStatus and MatchKind, as the audit event stores them.
CACHE_HIT, CACHE_MISS, CACHE_BYPASS, CACHE_SKIPPED = "hit", "miss", "bypass", "skipped"
MATCH_EXACT, MATCH_SEMANTIC = "exact", "semantic"


class _EpochSeconds(FunctionElement[int]):
    """Seconds since 1970 of a timestamp column, as an integer, in either dialect."""

    type = BigInteger()
    inherit_cache = True


@compiles(_EpochSeconds, "sqlite")
def _epoch_sqlite(element: _EpochSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(_EpochSeconds, "postgresql")
def _epoch_postgresql(element: _EpochSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS BIGINT)"


class _JsonReadable(FunctionElement[bool]):
    """True when a JSON column's stored text parses. SQLite keeps JSON as text, so a
    corrupted row could hold anything, and json_extract over it fails the whole query;
    PostgreSQL's json type refuses invalid JSON on write."""

    type = Boolean()
    inherit_cache = True


@compiles(_JsonReadable, "sqlite")
def _json_readable_sqlite(element: _JsonReadable, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_valid({compiler.process(element.clauses, **kw)})"


@compiles(_JsonReadable, "postgresql")
def _json_readable_postgresql(element: _JsonReadable, compiler: SQLCompiler, **kw: Any) -> str:
    return "true"


# -- what the endpoint returns (FastAPI serializes these dataclasses directly) ---------


@dataclass(frozen=True, slots=True)
class StatsWindow:
    since: datetime
    until: datetime  # exclusive
    bucket_s: int


@dataclass(frozen=True, slots=True)
class ExpertSeries:
    expert: str
    counts: list[int]  # one per bucket of ``Traffic.buckets``


@dataclass(frozen=True, slots=True)
class Traffic:
    buckets: list[datetime]  # each bucket's start
    series: list[ExpertSeries]


@dataclass(frozen=True, slots=True)
class ExpertShare:
    expert: str
    requests: int
    share: float  # of all chat requests in the window, 0..1


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Counts of chat requests in the window; rates are these over ``requests``."""

    requests: int
    abstained: int  # low confidence or out of domain: the generalist answered
    fallback: int  # answered by a fallback expert after the chosen one failed
    degraded: int  # over a quota whose policy degrades: the generalist answered
    quota_rejected: int  # refused with quota_exceeded (429)
    errors: int  # failed on our side (5xx)


@dataclass(frozen=True, slots=True)
class ConfidenceBin:
    low: float
    high: float  # exclusive, except the last bin, which includes 1.0
    count: int


@dataclass(frozen=True, slots=True)
class LatencyStat:
    expert: str  # an expert, or "all"
    stage: str  # guard | route | generate | total
    p50_ms: float
    p95_ms: float
    samples: int


@dataclass(frozen=True, slots=True)
class TeamUsage:
    team: str | None  # None: users without a team
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # None when no price is configured
    quota_rejected: int
    degraded: int


@dataclass(frozen=True, slots=True)
class Balance:
    """Shannon entropy of the expert choice: ``balance`` is 1.0 when every expert gets
    the same share and 0.0 when one gets everything (or nothing was asked)."""

    entropy_bits: float
    max_bits: float
    balance: float


@dataclass(frozen=True, slots=True)
class BreakerStat:
    expert: str
    state: str  # closed | open | half_open
    consecutive_failures: int
    retry_in_s: float


@dataclass(frozen=True, slots=True)
class CacheCounts:
    """The response cache's outcomes over chat requests of the window.

    ``lookups`` = ``hits`` + ``misses``: requests the cache was asked about.
    ``bypassed`` (``Cache-Control: no-cache``) and ``skipped`` (not cacheable: a later
    turn, PII in the question) were not looked up and are not lookups. ``hits`` =
    ``exact_hits`` + ``semantic_hits``. ``hit_rate``: ``hits / lookups``, 0..1, None
    with no lookups. ``tokens_saved``: the sum of the hits' ``tokens_saved`` (each the
    total tokens, prompt and completion, its source answer's generation used: what
    answering it again would have cost; the same figure as
    ``expertgate_cache_tokens_saved_total``).
    """

    lookups: int
    hits: int
    exact_hits: int
    semantic_hits: int
    misses: int
    bypassed: int
    skipped: int
    hit_rate: float | None
    tokens_saved: int


@dataclass(frozen=True, slots=True)
class CacheStat:
    """One expert's cache figures. ``enabled``: its cache is on in experts.yaml now (an
    expert whose cache is off has zero counts unless it was on earlier in the window).
    Requests are the expert's the lookup was made for (the route's ``routed_to``, after
    admission), not the one that answered after a fallback."""

    expert: str
    enabled: bool
    counts: CacheCounts


@dataclass(frozen=True, slots=True)
class CacheStats:
    """``experts``: every expert of the registry (then any other the trail names), in
    registry order. ``enabled``: how many have the cache on (0: it is off for all).
    ``total``: the sums over every expert."""

    enabled: int
    experts: list[CacheStat]
    total: CacheCounts


@dataclass(frozen=True, slots=True)
class DashboardStats:
    window: StatsWindow
    traffic: Traffic
    experts: list[ExpertShare]
    outcomes: Outcomes
    confidence: list[ConfidenceBin]
    latency: list[LatencyStat]
    latency_samples: int  # chat events the percentiles were computed from
    teams: list[TeamUsage]
    balance: Balance
    dead_experts: list[str]  # in the registry, no chat request in the window
    breakers: list[BreakerStat]
    cache: CacheStats
    breakers_process_local: bool = True


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per 1,000 tokens for the cost estimate; both 0 means no estimate."""

    prompt_per_1k: float = 0.0
    completion_per_1k: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if not (self.prompt_per_1k or self.completion_per_1k):
            return None
        return round((prompt_tokens * self.prompt_per_1k + completion_tokens * self.completion_per_1k) / 1000, 6)


def resolve_window(since: datetime | None, until: datetime | None, bucket_s: int | None, now: datetime) -> StatsWindow:
    """The window to aggregate (default: the last 24 hours) with a bucket width.

    Raises BadRequest when it is empty, longer than MAX_WINDOW, or would need more
    than MAX_BUCKETS buckets.
    """
    until = _utc(until) if until else now
    since = _utc(since) if since else until - timedelta(days=1)
    span = (until - since).total_seconds()
    if span <= 0:
        raise BadRequest("'since' must be before 'until'", param="since")
    if until - since > MAX_WINDOW:
        raise BadRequest(f"the window is longer than {MAX_WINDOW.days} days", param="since")
    if bucket_s is None:
        bucket_s = next((b for b in AUTO_BUCKETS_S if span / b <= 60), AUTO_BUCKETS_S[-1])
    if math.ceil(span / bucket_s) > MAX_BUCKETS:
        raise BadRequest(f"more than {MAX_BUCKETS} buckets: choose a wider bucket", param="bucket")
    return StatsWindow(since=since, until=until, bucket_s=bucket_s)


class AuditStats:
    """Reads only; one instance per request (it holds the request's session).

    ``experts``: the registry's expert names, in its order; ``cached``: those whose
    response cache is on (a name not in ``experts`` is ignored).
    """

    def __init__(
        self, session: AsyncSession, experts: Sequence[str], prices: Prices, cached: Collection[str] = ()
    ) -> None:
        self._session = session
        self._experts = list(experts)
        self._prices = prices
        self._cached = frozenset(cached) & frozenset(self._experts)

    async def dashboard(self, window: StatsWindow, breakers: Sequence[BreakerSnapshot]) -> DashboardStats:
        traffic = await self._traffic(window)
        totals = {s.expert: sum(s.counts) for s in traffic.series}
        requests = sum(totals.values())
        latency, sampled = await self._latency(window)
        return DashboardStats(
            window=window,
            traffic=traffic,
            experts=[
                ExpertShare(name, n, n / requests if requests else 0.0)
                for name, n in sorted(totals.items(), key=lambda kv: -kv[1])
            ],
            outcomes=await self._outcomes(window),
            confidence=await self._confidence(window),
            latency=latency,
            latency_samples=sampled,
            teams=await self._teams(window),
            balance=_balance(totals, len(self._experts)),
            dead_experts=[name for name in self._experts if not totals.get(name)],
            breakers=[
                BreakerStat(b.expert, b.state.value, b.consecutive_failures, round(b.retry_in_s, 1)) for b in breakers
            ],
            cache=await self._cache(window),
        )

    def _in_window(self, window: StatsWindow) -> list[ColumnElement[bool]]:
        """Chat events of the window whose payload reads (a corrupted row is left out of
        the figures rather than failing them; `expertgate audit verify` names it)."""
        return [
            AuditEvent.action == CHAT_ACTION,
            AuditEvent.ts >= window.since,
            AuditEvent.ts < window.until,
            _JsonReadable(AuditEvent.payload),
        ]

    async def _traffic(self, window: StatsWindow) -> Traffic:
        start = int(window.since.timestamp())
        bucket = ((_EpochSeconds(AuditEvent.ts) - literal(start, BigInteger)) // window.bucket_s).label("bucket")
        expert = func.coalesce(AuditEvent.expert, "(none)").label("expert")
        rows = await self._session.execute(
            select(bucket, expert, func.count()).where(*self._in_window(window)).group_by(bucket, expert)
        )
        n = math.ceil((window.until - window.since).total_seconds() / window.bucket_s)
        counts: dict[str, list[int]] = {name: [0] * n for name in self._experts}
        for index, name, count in rows:
            if index is None:  # a timestamp that is not a date (corrupted row): no bucket
                continue
            series = counts.setdefault(name, [0] * n)
            series[min(max(int(index), 0), n - 1)] += int(count)
        return Traffic(
            buckets=[window.since + timedelta(seconds=i * window.bucket_s) for i in range(n)],
            series=[ExpertSeries(name, series) for name, series in counts.items()],
        )

    async def _outcomes(self, window: StatsWindow) -> Outcomes:
        row = (
            await self._session.execute(
                select(
                    func.count(),
                    _count_if(AuditEvent.reason.in_(ABSTAIN_REASONS)),
                    _count_if(AuditEvent.reason == "fallback"),
                    _count_if(AuditEvent.reason == str(Reason.DEGRADED)),
                    _count_if(_error_code() == QUOTA_EXCEEDED),
                    _count_if(AuditEvent.outcome == "error"),
                ).where(*self._in_window(window))
            )
        ).one()
        requests, abstained, fallback, degraded, rejected, errors = (int(v or 0) for v in row)
        return Outcomes(requests, abstained, fallback, degraded, rejected, errors)

    async def _confidence(self, window: StatsWindow) -> list[ConfidenceBin]:
        confidence = AuditEvent.payload[("route", "confidence")].as_float()
        width = 1 / CONFIDENCE_BINS
        # A CASE ladder rather than floor() or a cast: SQLite has no floor() by default
        # and PostgreSQL rounds where SQLite truncates.
        ladder = case(
            *((confidence < (i + 1) * width, i) for i in range(CONFIDENCE_BINS - 1)),
            else_=CONFIDENCE_BINS - 1,
        ).label("bin")
        rows = await self._session.execute(
            select(ladder, func.count()).where(*self._in_window(window), confidence.is_not(None)).group_by(ladder)
        )
        counts = {int(b): int(c) for b, c in rows}
        return [
            ConfidenceBin(round(i * width, 2), round((i + 1) * width, 2), counts.get(i, 0))
            for i in range(CONFIDENCE_BINS)
        ]

    async def _latency(self, window: StatsWindow) -> tuple[list[LatencyStat], int]:
        rows = (
            await self._session.execute(
                select(AuditEvent.expert, AuditEvent.payload["latency_ms"])
                .where(*self._in_window(window))
                .order_by(AuditEvent.seq.desc())
                .limit(LATENCY_SAMPLE)
            )
        ).all()
        samples: dict[tuple[str, str], list[float]] = defaultdict(list)
        for expert, timings in rows:
            if not isinstance(timings, Mapping):
                continue
            for stage in STAGES:
                value = timings.get(stage)
                if isinstance(value, int | float) and math.isfinite(value):
                    samples[(ALL_EXPERTS, stage)].append(float(value))
                    if expert:
                        samples[(expert, stage)].append(float(value))
        out = [
            LatencyStat(expert, stage, _percentile(values, 50), _percentile(values, 95), len(values))
            for (expert, stage), values in sorted(samples.items(), key=lambda kv: (kv[0][0] != ALL_EXPERTS, kv[0]))
        ]
        return out, len(rows)

    async def _teams(self, window: StatsWindow) -> list[TeamUsage]:
        prompt = AuditEvent.payload[("usage", "prompt_tokens")].as_integer()
        completion = AuditEvent.payload[("usage", "completion_tokens")].as_integer()
        rows = await self._session.execute(
            select(
                AuditEvent.team,
                func.count(),
                func.coalesce(func.sum(prompt), 0),
                func.coalesce(func.sum(completion), 0),
                _count_if(_error_code() == QUOTA_EXCEEDED),
                _count_if(AuditEvent.reason == str(Reason.DEGRADED)),
            )
            .where(*self._in_window(window))
            .group_by(AuditEvent.team)
        )
        teams = [
            TeamUsage(
                team=team,
                requests=int(n),
                prompt_tokens=int(p),
                completion_tokens=int(c),
                cost_usd=self._prices.cost(int(p), int(c)),
                quota_rejected=int(rejected or 0),
                degraded=int(degraded or 0),
            )
            for team, n, p, c, rejected, degraded in rows
        ]
        return sorted(teams, key=lambda t: -(t.prompt_tokens + t.completion_tokens))

    async def _cache(self, window: StatsWindow) -> CacheStats:
        status = AuditEvent.payload[("cache", "status")].as_string()
        match = AuditEvent.payload[("cache", "match")].as_string()
        saved = AuditEvent.payload[("cache", "tokens_saved")].as_integer()
        # The expert the lookup was made for; events without a route record (none has a
        # cache object today) fall back to the answering expert.
        expert = func.coalesce(
            AuditEvent.payload[("route", "routed_to")].as_string(), AuditEvent.expert, "(none)"
        ).label("expert")
        rows = await self._session.execute(
            select(
                expert,
                _count_if(status == CACHE_HIT),
                _count_if(and_(status == CACHE_HIT, match == MATCH_EXACT)),
                _count_if(and_(status == CACHE_HIT, match == MATCH_SEMANTIC)),
                _count_if(status == CACHE_MISS),
                _count_if(status == CACHE_BYPASS),
                _count_if(status == CACHE_SKIPPED),
                func.coalesce(func.sum(case((status == CACHE_HIT, saved), else_=0)), 0),
            )
            .where(*self._in_window(window), status.is_not(None))
            .group_by(expert)
        )
        # Per expert: hits, exact, semantic, misses, bypassed, skipped, tokens saved.
        nothing = (0,) * 7
        counted = {name: tuple(int(v or 0) for v in values) for name, *values in rows}
        names = self._experts + sorted(set(counted) - set(self._experts))
        experts = [CacheStat(name, name in self._cached, _cache_counts(*counted.get(name, nothing))) for name in names]
        total = _cache_counts(*(sum(column) for column in zip(nothing, *counted.values(), strict=True)))
        return CacheStats(enabled=len(self._cached), experts=experts, total=total)


def _cache_counts(
    hits: int, exact: int, semantic: int, misses: int, bypassed: int, skipped: int, tokens_saved: int
) -> CacheCounts:
    lookups = hits + misses
    return CacheCounts(
        lookups=lookups, hits=hits, exact_hits=exact, semantic_hits=semantic, misses=misses,
        bypassed=bypassed, skipped=skipped, hit_rate=round(hits / lookups, 4) if lookups else None,
        tokens_saved=tokens_saved,
    )  # fmt: skip


def _error_code() -> ColumnElement[str]:
    code: ColumnElement[str] = AuditEvent.payload[("error", "code")].as_string()
    return code


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0), type_=Integer)


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list, in the values' unit."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def _balance(totals: Mapping[str, int], experts: int) -> Balance:
    total = sum(totals.values())
    max_bits = math.log2(experts) if experts > 1 else 0.0
    if not total:
        return Balance(0.0, round(max_bits, 4), 0.0)
    bits = -sum((n / total) * math.log2(n / total) for n in totals.values() if n)
    return Balance(round(bits, 4), round(max_bits, 4), round(bits / max_bits, 4) if max_bits else 0.0)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
