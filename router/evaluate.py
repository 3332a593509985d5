"""Evaluating a router on labelled examples: quality, calibration, abstention, latency."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router.dataset import Example
from router.metrics import Report, classification_report, expected_calibration_error
from router.service import Router
from router.types import RouteRequest


def _pct(values: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p)) if values else 0.0


@dataclass(frozen=True)
class Evaluation:
    router_version: str
    report: Report
    ece: float
    abstain_rate: float
    reasons: dict[str, int]
    latency_p50_ms: float
    latency_p99_ms: float
    batch_rps: float

    def as_dict(self) -> dict[str, object]:
        return {
            "router_version": self.router_version,
            **self.report.as_dict(),
            "ece": round(self.ece, 4),
            "abstain_rate": round(self.abstain_rate, 4),
            "reasons": self.reasons,
            "latency_ms": {"p50": round(self.latency_p50_ms, 2), "p99": round(self.latency_p99_ms, 2)},
            "batch_throughput_rps": round(self.batch_rps, 1),
        }


def evaluate(router: Router, examples: Sequence[Example], latency_samples: int = 200) -> Evaluation:
    """Metrics of ``router`` on ``examples`` (labels must be the router's experts).

    Latency is measured per single request (embedding included), sequentially, on the
    first ``latency_samples`` examples after a warm-up.
    """
    labels = router.scorer.experts
    requests = [RouteRequest(text=e.text) for e in examples]
    decisions = router.route_many(requests)
    truth = [e.domain for e in examples]
    report = classification_report(truth, [d.expert for d in decisions], labels)
    probs = np.array([[d.probabilities[label] for label in labels] for d in decisions], dtype=np.float32)
    index = {label: i for i, label in enumerate(labels)}
    ece = expected_calibration_error(probs, np.array([index[t] for t in truth]))

    for r in requests[:10]:
        router.route(r)
    timings = []
    for r in requests[:latency_samples]:
        start = time.perf_counter()
        router.route(r)
        timings.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    router.route_many(requests)
    batch_s = time.perf_counter() - start
    reasons: dict[str, int] = {}
    for d in decisions:
        reasons[str(d.reason)] = reasons.get(str(d.reason), 0) + 1
    return Evaluation(
        router_version=router.version,
        report=report,
        ece=ece,
        abstain_rate=sum(d.expert == "general" for d in decisions) / len(decisions),
        reasons=reasons,
        latency_p50_ms=_pct(timings, 50),
        latency_p99_ms=_pct(timings, 99),
        batch_rps=len(requests) / batch_s,
    )
