"""The peer: semantic-router (aurelio-labs, 1.1.1) on the same encoder and examples.

Runs in its own venv (bench/.venv-peer; semantic-router pulls in SDKs the product does
not want), from the repository root so that ``router`` and ``bench`` import:

    bench/.venv-peer/bin/python -m bench.router_peer [--threads 1] [--dev PATH]

Same encoder: a semantic-router ``DenseEncoder`` over our own encoder adapter
(router.encoder.SentenceTransformerEncoder: the bundled all-MiniLM-L6-v2, offline, CPU).
Same examples: one ``Route`` per expert with its utterances from the shipped training set
(router.dataset.SEED_FILES: train.jsonl and router/data/broad/) less the validation rows a
gate holds back; an ``IndexedRouter`` over the in-memory ``LocalIndex``. Two ways a
semantic-router user would get ``general``:

- ``general_route``: ``general`` is a route like the others (plus a threshold, if tuning
  on validation finds one helps; no pick -> general);
- ``threshold_only``: routes for code/legal/support only; a query under the
  confidence threshold gets no route, and no route -> general.

Everything is tuned on those validation rows only, as one grid: the calibrator
(semantic-router's ``fit``, Platt or isotonic), the index search (top_k, aggregation)
and the confidence thresholds (a grid on the router's threshold, then per-route
thresholds by coordinate ascent; semantic-router 1.1.1 has no threshold optimiser). The objective is the one our gate's threshold tuning uses:
validation macro-F1 with in-domain abstain <= 4%, then general recall. The chosen
configuration then routes the test split, the public dev set (overall and per source;
``--dev PATH``, see bench.router_common) and the follow-ups' texts once each (it keeps no
conversation state). Per set: macro-F1, per-expert recall, general recall and the ECE of
the top route's calibrated confidence against whether that route was right.

Writes bench/results/router_peer.json (scores and counts only: no dev-set text).
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import semantic_router
import torch
from pydantic import PrivateAttr
from semantic_router import IndexedRouter, Route
from semantic_router.encoders import DenseEncoder
from semantic_router.index import LocalIndex
from semantic_router.schema import RouteChoice

from bench.router_common import (
    DEV,
    EXPERTS,
    FOLLOW_UPS,
    TEST,
    EvalSet,
    Splits,
    Timed,
    TimingPlan,
    conversations,
    dev_args,
    dev_set,
    dev_summary,
    eval_sets,
    evaluation,
    machine,
    quality,
    run_timing,
    splits,
    timing_args,
    write_result,
)
from router.encoder import SentenceTransformerEncoder, bundled_minilm_path
from router.metrics import GENERALIST, classification_report

MAX_IN_DOMAIN_ABSTAIN = 0.04  # as router.train.TrainConfig.max_in_domain_abstain
# The grid around the configurations that won when the routes held 1.2k utterances
# (top_k 20 and 3, sum; docs/router.md): with 12k utterances semantic-router's local
# index costs ~15 ms a query, and the full 6 x 3 grid would take hours on 2 cores.
TOP_KS = (3, 20)
AGGREGATIONS = ("mean", "sum")
METHODS = ("platt", "isotonic")


class MiniLMEncoder(DenseEncoder):  # type: ignore[misc]  # semantic-router is untyped in the main venv
    """semantic-router encoder over the bundled all-MiniLM-L6-v2 (no hub, no network).

    ``memo`` caches vectors by text while tuning, where the same validation queries are
    routed under many configurations; it is switched off before anything is timed.
    """

    name: str = "all-MiniLM-L6-v2"
    type: str = "local"
    _model: Any = PrivateAttr()
    _memo: dict[str, list[float]] | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._model = SentenceTransformerEncoder(bundled_minilm_path(), name=self.name, precision="auto")  # as ours

    @property
    def model(self) -> SentenceTransformerEncoder:
        """The wrapped adapter (for timing the embedding alone)."""
        return self._model  # type: ignore[no-any-return]

    def memoise(self, on: bool) -> None:
        self._memo = {} if on else None

    def __call__(self, docs: list[Any]) -> list[list[float]]:
        texts = [str(d) for d in docs]
        if self._memo is None:
            return self.model.encode(texts).tolist()  # type: ignore[no-any-return]
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            self._memo.update(zip(missing, self.model.encode(missing).tolist(), strict=True))
        return [self._memo[t] for t in texts]


@dataclass(frozen=True)
class Variant:
    name: str
    routes: tuple[str, ...]  # experts that get a Route; the rest are reached by "no pick"

    def label(self, domain: str) -> str | None:
        """The route a query of ``domain`` should get (None: no route should match)."""
        return domain if domain in self.routes else None


VARIANTS = (
    Variant("general_route", EXPERTS),
    Variant("threshold_only", tuple(e for e in EXPERTS if e != GENERALIST)),
)


@dataclass
class Config:
    top_k: int
    aggregation: str
    method: str
    threshold: float | None = None  # the router's confidence_threshold
    route_thresholds: dict[str, float] = field(default_factory=dict)  # Route.confidence_threshold


def make_router(encoder: MiniLMEncoder, splits_: Splits, variant: Variant, cfg: Config) -> IndexedRouter:
    routes = [
        Route(
            name=name,
            utterances=[e.text for e in splits_.fit if e.domain == name],
            confidence_threshold=cfg.route_thresholds.get(name),
        )
        for name in variant.routes
    ]
    return IndexedRouter(
        encoder=encoder,
        routes=routes,
        index=LocalIndex(),
        top_k=cfg.top_k,
        aggregation=cfg.aggregation,  # type: ignore[arg-type]
        confidence_threshold=cfg.threshold,
    )


def ranked(router: IndexedRouter, text: str) -> list[RouteChoice]:
    """Every route for ``text``, best first, with its calibrated confidence (public API)."""
    out = router(text, limit=None, threshold=0.0)
    assert isinstance(out, list)
    return out


def pick(choices: Sequence[RouteChoice], threshold: float | None, bars: dict[str, float]) -> str:
    """What ``router(text)`` returns for these ranked choices, mapped to an expert: the
    first route that clears its own threshold (else the router's), no pick -> general."""
    for c in choices:
        bar = bars.get(c.name or "", threshold)
        if bar is None or (c.confidence or 0.0) >= bar:
            return c.name or GENERALIST
    return GENERALIST


def objective(truth: Sequence[str], predicted: Sequence[str]) -> tuple[float, float, float]:
    rep = classification_report(truth, predicted, EXPERTS)
    return (float(rep.in_domain_abstain_rate <= MAX_IN_DOMAIN_ABSTAIN), rep.macro_f1, rep.general_recall)


def tune(encoder: MiniLMEncoder, data: Splits, variant: Variant) -> tuple[Config, dict[str, object]]:
    """The best configuration on validation, and its validation metrics."""
    val_texts = [e.text for e in data.val]
    val_truth = [e.domain for e in data.val]
    val_labels = [variant.label(d) for d in val_truth]
    best: tuple[tuple[float, float, float], Config] | None = None
    tried = 0
    for top_k in TOP_KS:
        for aggregation in AGGREGATIONS:
            router = make_router(encoder, data, variant, Config(top_k, aggregation, "platt"))
            for method in METHODS:
                router.fit(val_texts, val_labels, method=method)  # type: ignore[arg-type]
                choices = [ranked(router, t) for t in val_texts]
                tops = sorted({round(c[0].confidence or 0.0, 4) for c in choices})
                grid: list[float | None] = [None, *np.quantile(tops, np.linspace(0.0, 0.6, 31)).round(4).tolist()]
                local: tuple[tuple[float, float, float], Config] | None = None
                for threshold in grid:
                    tried += 1
                    key = objective(val_truth, [pick(c, threshold, {}) for c in choices])
                    if local is None or key > local[0]:
                        local = (key, Config(top_k, aggregation, method, threshold))
                assert local is not None
                local = refine(local, choices, val_truth, variant, grid)
                if best is None or local[0] > best[0]:
                    best = local
    assert best is not None
    key, cfg = best
    return cfg, {"tried": tried, "objective": list(key)}


def refine(
    best: tuple[tuple[float, float, float], Config],
    choices: list[list[RouteChoice]],
    truth: Sequence[str],
    variant: Variant,
    grid: Sequence[float | None],
) -> tuple[tuple[float, float, float], Config]:
    """Per-route thresholds by coordinate ascent from the best router-wide threshold."""
    key, cfg = best
    bars = dict(cfg.route_thresholds)
    for _ in range(2):
        for name in variant.routes:
            for value in grid:
                trial = dict(bars)
                if value is None:
                    trial.pop(name, None)
                else:
                    trial[name] = value
                k = objective(truth, [pick(c, cfg.threshold, trial) for c in choices])
                if k > key:
                    key, bars = k, trial
    return key, Config(cfg.top_k, cfg.aggregation, cfg.method, cfg.threshold, bars)


@dataclass
class Prepared:
    """A tuned router and its quality on every set; timings are added later."""

    router: IndexedRouter
    predicted: list[str]  # what router(text) returned for each test text, untimed
    result: dict[str, object]
    picked: dict[str, str] = field(default_factory=dict)  # the same, from the timed calls


def route_set(
    router: IndexedRouter, cfg: Config, variant: Variant, data: EvalSet
) -> tuple[list[str], dict[str, object]]:
    """What ``router(text)`` returns for each text of ``data``, and its quality there."""
    predicted = [_expert(router(t)) for t in data.texts]
    # The full ranking, for the calibration error of the top route's confidence (and to
    # check that ``pick``, used in tuning, reproduces what the router returns).
    choices = [ranked(router, t) for t in data.texts]
    assert [pick(c, cfg.threshold, cfg.route_thresholds) for c in choices] == predicted, data.name
    confidence = [c[0].confidence or 0.0 for c in choices]
    correct = [c[0].name == variant.label(t) for c, t in zip(choices, data.truth, strict=True)]
    return predicted, evaluation(data, predicted, confidence, correct)


def prepare(encoder: MiniLMEncoder, data: Splits, variant: Variant, sets: Sequence[EvalSet]) -> Prepared:
    encoder.memoise(True)
    start = time.perf_counter()
    # Many grid points calibrate badly (e.g. top_k=1); the library warns for each of them.
    sr_logger = logging.getLogger("semantic_router")
    level = sr_logger.level
    sr_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # Platt's Newton steps overflow exp() on the worst grid points (harmless there).
            warnings.simplefilter("ignore", RuntimeWarning)
            cfg, tuning = tune(encoder, data, variant)
    finally:
        sr_logger.setLevel(level)
    tune_s = time.perf_counter() - start

    router = make_router(encoder, data, variant, cfg)
    val_texts = [e.text for e in data.val]
    val_truth = [e.domain for e in data.val]
    report = router.fit(val_texts, [variant.label(d) for d in val_truth], method=cfg.method)  # type: ignore[arg-type]
    val_pred = [_expert(router(t)) for t in val_texts]
    routed = {s.name: route_set(router, cfg, variant, s) for s in sets}

    result: dict[str, object] = {
        "config": {
            "routes": list(variant.routes),
            "index": "LocalIndex",
            "top_k": cfg.top_k,
            "aggregation": cfg.aggregation,
            "calibration": cfg.method,
            "confidence_threshold": cfg.threshold,
            "route_thresholds": cfg.route_thresholds,
            "n_utterances": sum(e.domain in variant.routes for e in data.fit),
        },
        "tuning": {**tuning, "seconds": round(tune_s, 1)},
        "validation": {
            **quality(val_truth, val_pred),
            "fit_report": {"accuracy": round(report.accuracy, 4), "ece": round(report.ece, 4)},
        },
        "sets": {name: evaluated for name, (_, evaluated) in routed.items()},
    }
    return Prepared(router, routed[TEST][0], result)


def timed(prepared: Prepared, encoder: MiniLMEncoder, variant: Variant, truth: dict[str, str]) -> Timed:
    """The public calls a user makes: ``router(text)`` for one, ``evaluate`` for a batch
    (semantic-router's only public batched path: one encoder call for the batch)."""
    router, picked = prepared.router, prepared.picked

    def route_one(text: str) -> None:
        picked[text] = _expert(router(text))

    return Timed(
        route_one=route_one,
        encode_one=lambda t: encoder.model.encode([t]),
        route_batch=lambda batch: router.evaluate(batch, [variant.label(truth[t]) for t in batch]),
    )


def _expert(choice: RouteChoice | list[RouteChoice]) -> str:
    assert isinstance(choice, RouteChoice)
    return choice.name or GENERALIST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    dev_args(parser)
    timing_args(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data, dev, turns = splits(), dev_set(args.dev), conversations()
    sets = eval_sets(data.test, dev, turns)
    start = time.perf_counter()
    encoder = MiniLMEncoder()
    load_s = time.perf_counter() - start
    prepared = {v.name: prepare(encoder, data, v, sets) for v in VARIANTS}
    encoder.memoise(False)  # from here on every query is embedded, as in production
    truth = {e.text: e.domain for e in data.test}
    texts = [e.text for e in data.test]
    plan = TimingPlan({v.name: timed(prepared[v.name], encoder, v, truth) for v in VARIANTS}, texts)
    loadavg_before = machine()["loadavg"]
    run_timing(plan, args.serve_timing)
    for name, p in prepared.items():
        assert [p.picked[t] for t in texts] == p.predicted, f"{name}: timed decisions differ from untimed"
        p.result["latency_ms"] = plan.latency(name)
        p.result["throughput_rps"] = plan.throughput(name)
    result: dict[str, object] = {
        "system": f"semantic-router {semantic_router.__version__}",
        "encoder": "all-MiniLM-L6-v2 (same adapter: router.encoder.SentenceTransformerEncoder, CPU)",
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "data": {
            "split": {"fit": len(data.fit), "val": len(data.val), TEST: len(data.test)},
            FOLLOW_UPS: len(turns),
            DEV: dev_summary(args.dev, dev),
        },
        "variants": {name: p.result for name, p in prepared.items()},
        "machine": {**machine(), "loadavg_before_timing": loadavg_before},
    }
    path = write_result("router_peer", result)
    for name, p in prepared.items():
        sets_ = p.result["sets"]
        assert isinstance(sets_, dict)
        line = "  ".join(f"{s} macro-F1 {r['macro_f1']} ECE {r['ece']}" for s, r in sets_.items())
        print(f"{result['system']} [{name}]: {line}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
