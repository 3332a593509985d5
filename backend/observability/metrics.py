"""Prometheus metrics, owned by the runtime (no module-global registry).

One :class:`Metrics` per process, built by ``build_runtime``; the chat pipeline calls
:meth:`Metrics.observe_chat` with the same :class:`ChatTrace` it audits, so metrics and
the audit trail can never disagree about a request. Gauges that describe state (router
and index versions) are read at scrape time from callables given at construction.

Labels are bounded: experts come from experts.yaml, outcomes and reasons from fixed
sets, error codes from ERROR_TABLE. No user, prompt or request id is ever a label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from backend.audit.chat import ChatTrace
from experts.resilience import BreakerSnapshot, BreakerState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STAGES = ("guard", "route", "retrieve", "generate", "total")


class _StateCollector(Collector):
    """Router and index versions, read when Prometheus scrapes."""

    def __init__(self, router_version: Callable[[], str], index_versions: Callable[[], Mapping[str, str | None]]):
        self._router_version = router_version
        self._index_versions = index_versions

    def collect(self) -> Iterable[InfoMetricFamily | GaugeMetricFamily]:
        info = InfoMetricFamily("expertgate_router", "The active router (gate) version in this process")
        info.add_metric([], {"version": self._router_version()})
        yield info
        index = InfoMetricFamily("expertgate_index", "The loaded index version per knowledge domain", labels=["domain"])
        for domain, version in self._index_versions().items():
            index.add_metric([domain], {"version": version or "none"})
        yield index


class _BreakerCollector(Collector):
    """Each expert's circuit breaker in this process, read when Prometheus scrapes.

    ``expertgate_breaker_state{expert, state}`` is 1 for the breaker's current state and
    0 for the other two (closed, half_open, open), so ``== 1`` selects it and a sum over
    ``state="open"`` counts open breakers.
    """

    def __init__(self, breakers: Callable[[], Iterable[BreakerSnapshot]]) -> None:
        self._breakers = breakers

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        state = GaugeMetricFamily(
            "expertgate_breaker_state",
            "Circuit breaker state per expert in this process (1 = the current state)",
            labels=["expert", "state"],
        )
        opened = CounterMetricFamily(
            "expertgate_breaker_opened", "Times each expert's breaker opened in this process", labels=["expert"]
        )
        for snap in self._breakers():
            for candidate in BreakerState:
                state.add_metric([snap.expert, candidate.value], 1.0 if snap.state is candidate else 0.0)
            opened.add_metric([snap.expert], snap.opened_total)
        yield state
        yield opened


class TextMemoStats(Protocol):
    """The text memo's counters (router.memo.TextMemo)."""

    hits: int
    misses: int

    def __len__(self) -> int: ...


class _MemoCollector(Collector):
    """The text memo (router/memo.py), read when Prometheus scrapes: values (vectors, gate
    scores) taken from memory, values computed, and how many it holds."""

    def __init__(self, memo: TextMemoStats) -> None:
        self._memo = memo

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        memo = self._memo
        yield CounterMetricFamily(
            "expertgate_text_memo_hits", "Vectors and gate scores of repeated texts taken from memory", value=memo.hits
        )
        yield CounterMetricFamily(
            "expertgate_text_memo_misses", "Vectors and gate scores computed (not in the memo)", value=memo.misses
        )
        yield GaugeMetricFamily("expertgate_text_memo_entries", "Values the memo holds", value=len(memo))


class ReviewQueue(Protocol):
    """The review queue's figures (backend.review.types.QueueStats)."""

    @property
    def depth(self) -> Mapping[str, int]: ...

    @property
    def age_p50_s(self) -> float: ...

    @property
    def age_p95_s(self) -> float: ...

    @property
    def age_max_s(self) -> float: ...


class Metrics:
    def __init__(
        self,
        *,
        router_version: Callable[[], str] | None = None,
        index_versions: Callable[[], Mapping[str, str | None]] | None = None,
        breakers: Callable[[], Iterable[BreakerSnapshot]] | None = None,
        memo: TextMemoStats | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "expertgate_chat_requests",
            "Chat requests that reached an expert decision, by answering expert, outcome and routing reason",
            ["expert", "outcome", "reason", "code"],
            registry=r,
        )
        self.confidence = Histogram(
            "expertgate_routing_confidence",
            "The gate's probability for the decided expert",
            ["expert"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "expertgate_stage_seconds",
            "Latency of each pipeline stage (total: from input guard to the last byte)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "expertgate_tokens", "Tokens reported by expert endpoints", ["expert", "kind"], registry=r
        )
        self.fallbacks = Counter(
            "expertgate_fallbacks",
            "Experts skipped on the way to an answer (their LLM failed), by skipped expert",
            ["expert"],
            registry=r,
        )
        self.grounding = Histogram(
            "expertgate_grounding_score",
            "Share of an answer's claims supported by the passages it cites, by answering expert",
            ["expert"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.unsupported = Counter(
            "expertgate_unsupported_claims",
            "Answer claims the cited passages do not support, by expert and reason",
            ["expert", "reason"],
            registry=r,
        )
        self.grounding_actions = Counter(
            "expertgate_grounding_actions",
            "Answers below their expert's min_score, by expert and the policy's action",
            ["expert", "action"],
            registry=r,
        )
        self.retrieval_degraded = Counter(
            "expertgate_retrieval_degraded", "Answers given without (some) retrieval", registry=r
        )
        self.in_flight = Gauge(
            "expertgate_expert_in_flight",
            "Requests holding a capacity slot per expert (every process sharing the store)",
            ["expert"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "expertgate_queue_depth",
            "Tasks waiting in the Celery broker's queue (scale-out mode)",
            ["queue"],
            registry=r,
        )
        self.reviews_pending = Gauge(
            "expertgate_reviews_pending",
            "Answers waiting for a person in the review queue, by expert (docs/review.md)",
            ["expert"],
            registry=r,
        )
        self.review_age = Gauge(
            "expertgate_review_pending_age_seconds",
            "How long pending reviews have waited: quantile 0.5, 0.95 and 1 (the oldest)",
            ["quantile"],
            registry=r,
        )
        self.reviews = Counter(
            "expertgate_reviews", "Answers sent to review, by expert and trigger", ["expert", "trigger"], registry=r
        )
        self.safety_flags = Counter(
            "expertgate_safety_flags",
            "Requests the input safety check flagged, by the expert routed to, the top category and the action taken",
            ["expert", "category", "action"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "expertgate_cache_lookups",
            "Response cache lookups by expert and result "
            "(hit, miss, bypass: no-cache, skipped: not a first turn or PII)",
            ["expert", "result"],
            registry=r,
        )
        self.cache_tokens_saved = Counter(
            "expertgate_cache_tokens_saved",
            "Tokens (prompt and completion) of the cached answers replayed instead of generated, by expert",
            ["expert"],
            registry=r,
        )
        if router_version is not None:
            r.register(_StateCollector(router_version, index_versions or dict))
        if breakers is not None:
            r.register(_BreakerCollector(breakers))
        if memo is not None:
            r.register(_MemoCollector(memo))

    def set_load(self, in_flight: Mapping[str, int], queues: Mapping[str, int]) -> None:
        """The shared-store gauges, refreshed by the scrape handler just before render."""
        for expert, held in in_flight.items():
            self.in_flight.labels(expert).set(held)
        for queue, depth in queues.items():
            self.queue_depth.labels(queue).set(depth)

    def set_reviews(self, experts: Iterable[str], stats: ReviewQueue) -> None:
        """The review queue gauges, refreshed by the scrape handler (every expert gets a
        value, 0 when nothing of it waits)."""
        for expert in {*experts, *stats.depth}:
            self.reviews_pending.labels(expert).set(stats.depth.get(expert, 0))
        self.review_age.labels("0.5").set(stats.age_p50_s)
        self.review_age.labels("0.95").set(stats.age_p95_s)
        self.review_age.labels("1").set(stats.age_max_s)

    def observe_chat(self, trace: ChatTrace) -> None:
        """Count one finished request (answered, refused or failed) from its trace."""
        decision = trace.decision
        expert = trace.expert or (decision.expert if decision else "none")
        if trace.error is None:
            outcome, code = "ok", ""
        else:
            outcome = "error" if trace.error.status >= 500 else "refused"
            if trace.error.code == "client_closed":
                outcome = "aborted"
            code = trace.error.code
        # As the API and the audit trail report it: an answer after a fallback says so.
        reason = "fallback" if trace.fallbacks and trace.error is None else str(decision.reason) if decision else "none"
        self.requests.labels(expert, outcome, reason, code).inc()
        if decision is not None:
            self.confidence.labels(decision.expert).observe(decision.confidence)
        for stage, ms in trace.latency_ms.items():
            if stage in STAGES:
                self.stage_seconds.labels(stage).observe(ms / 1000)
        retrieval_ms = trace.retrieval.get("ms")
        if isinstance(retrieval_ms, int | float):
            self.stage_seconds.labels("retrieve").observe(retrieval_ms / 1000)
        if trace.retrieval.get("degraded"):
            self.retrieval_degraded.inc()
        if trace.usage is not None:
            self.tokens.labels(expert, "prompt").inc(trace.usage.prompt_tokens)
            self.tokens.labels(expert, "completion").inc(trace.usage.completion_tokens)
        for step in trace.fallbacks:
            self.fallbacks.labels(step.expert).inc()
        self._observe_grounding(expert, trace.grounding)
        if trace.review is not None:
            self.reviews.labels(expert, str(trace.review.get("trigger"))).inc()
        if trace.safety is not None and trace.safety.get("category"):
            self.safety_flags.labels(expert, str(trace.safety["category"]), str(trace.safety.get("action"))).inc()

    def _observe_grounding(self, expert: str, grounding: Mapping[str, object] | None) -> None:
        if grounding is None or not isinstance(grounding.get("score"), int | float):
            return
        self.grounding.labels(expert).observe(float(grounding["score"]))  # type: ignore[arg-type]
        for mark in grounding.get("unsupported") or []:  # type: ignore[attr-defined]
            self.unsupported.labels(expert, str(mark.get("reason", "unsupported"))).inc()
        action = grounding.get("action")
        if action not in (None, "none"):
            self.grounding_actions.labels(expert, str(action)).inc()

    def observe_cache(self, expert: str, result: str, tokens_saved: int) -> None:
        """Count one response cache lookup (backend/cache/service.py)."""
        self.cache_lookups.labels(expert, result).inc()
        if tokens_saved:
            self.cache_tokens_saved.labels(expert).inc(tokens_saved)

    def render(self) -> bytes:
        """The exposition text for GET /metrics."""
        return generate_latest(self.registry)
