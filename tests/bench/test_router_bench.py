"""The router benchmark's shared plumbing: splits, calibration error, the timing protocol."""

from __future__ import annotations

import io

import numpy as np
import pytest

from bench.router_common import PROTOCOL, Timed, TimingPlan, ece_top1, splits
from router.dataset import SEED_FILES, load_examples
from router.metrics import expected_calibration_error


def test_peer_is_tuned_on_the_gates_validation_rows_and_never_on_test() -> None:
    s = splits()
    shipped = load_examples(SEED_FILES)  # train.jsonl + broad/: every row in fit or val, 15% in val
    assert len(s.fit) + len(s.val) == len(shipped) and abs(len(s.val) / len(shipped) - 0.15) < 0.005
    test_texts = {e.text for e in s.test}
    assert not test_texts & {e.text for e in s.fit + s.val}


def test_top1_ece_matches_the_gates_ece() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=300).astype(np.float32)
    truth = rng.integers(0, 4, size=300)
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == truth
    assert ece_top1(conf.tolist(), correct.tolist()) == pytest.approx(expected_calibration_error(probs, truth))
    assert ece_top1([0.9, 0.9], [True, False]) == pytest.approx(0.4)


def _system(calls: list[str]) -> Timed:
    return Timed(
        route_one=lambda t: calls.append(f"route {t}"),
        encode_one=lambda t: calls.append(f"encode {t}"),
        route_batch=lambda batch: calls.append(f"batch {len(batch)}"),
    )


def test_timing_plan_runs_the_steps_it_announces_and_stops_at_end() -> None:
    calls: list[str] = []
    texts = [f"t{i}" for i in range(5)]
    plan = TimingPlan({"a": _system(calls)}, texts, chunk=2)
    out = io.StringIO()
    commands = "".join(f"RUN a {step}\n" for step in plan.steps) + "END\nRUN a latency:0\n"
    plan.serve(io.StringIO(commands), out)

    lines = out.getvalue().splitlines()
    assert lines[0] == f"{PROTOCOL}READY a " + " ".join(plan.steps)
    assert plan.steps[:4] == ["warmup", "latency:0", "latency:1", "latency:2"]
    assert lines[1:] == [f"{PROTOCOL}DONE"] * len(plan.steps)  # nothing ran after END
    # The warm-up (all 5 texts here, then a batch), then each text timed once, the
    # embedding alone alternating before and after the routing call; then 3 batches.
    warmup = len(texts) * 2 + 1
    assert calls[warmup - 1] == "batch 5"
    assert calls[warmup : warmup + 4] == ["route t0", "encode t0", "encode t1", "route t1"]
    assert calls[warmup + 2 * len(texts) :] == ["batch 5"] * 3
    lat = plan.latency("a")
    assert lat["n"] == 5 and lat["short"]["n"] == 5  # type: ignore[index]
    assert plan.throughput("a")["batch"] == 5


def test_timing_plan_rejects_a_garbled_command() -> None:
    plan = TimingPlan({"a": _system([])}, ["x"])
    with pytest.raises(ValueError, match="bad timing command"):
        plan.serve(io.StringIO("RUN a\n"), io.StringIO())
    with pytest.raises(KeyError):
        plan.run_step("nope", "warmup")
