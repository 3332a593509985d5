"""What the router benchmark's two sides share: data splits, metrics, timing, results.

Imported by bench.router_bench (our gate, main venv) and bench.router_peer
(semantic-router, its own venv), so it needs only numpy and the framework-free parts of
router/ (router.data, router.metrics, router.encoder): nothing from backend/.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router.data import SEED_DIR, Example, load_jsonl, stratified_split
from router.metrics import GENERALIST, classification_report

EXPERTS = ("code", "legal", "support", GENERALIST)
RESULTS = Path(__file__).resolve().parent / "results"
CONVERSATIONS = SEED_DIR / "conversations.jsonl"
# The split train_gate uses (TrainConfig defaults): the peer is tuned on the same rows.
VAL_FRACTION = 0.15
SPLIT_SEED = 7
WARMUP = 20
THROUGHPUT_REPEATS = 3


@dataclass(frozen=True)
class Splits:
    fit: list[Example]  # train.jsonl less the validation rows
    val: list[Example]  # validation rows of train.jsonl: all tuning happens here
    test: list[Example]  # test.jsonl: held out, measured once per side


@dataclass(frozen=True)
class Turn:
    """A follow-up from conversations.jsonl: the new text, the user turns before it and
    the expert that answered the last turn."""

    text: str
    domain: str
    history: tuple[str, ...]
    previous_expert: str | None


def splits() -> Splits:
    fit, val = stratified_split(load_jsonl(SEED_DIR / "train.jsonl"), VAL_FRACTION, SPLIT_SEED)
    return Splits(fit, val, load_jsonl(SEED_DIR / "test.jsonl"))


def conversations() -> list[Turn]:
    out = []
    for line in CONVERSATIONS.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        users = tuple(m["content"] for m in row["history"] if m["role"] == "user")
        experts = [m.get("expert") for m in row["history"] if m["role"] == "assistant"]
        out.append(Turn(row["text"], row["domain"], users, experts[-1] if experts else None))
    return out


def quality(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, object]:
    """Accuracy, macro-F1, per-expert P/R/F1, confusion, general recall, in-domain abstained."""
    return classification_report(truth, predicted, EXPERTS).as_dict()


def ece_top1(confidence: Sequence[float], correct: Sequence[bool], bins: int = 15) -> float:
    """ECE of a stated top-1 confidence, equal-width bins over (0, 1] (as router.metrics)."""
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=float)
    total = 0.0
    for lo, hi in itertools.pairwise(np.linspace(0.0, 1.0, bins + 1)):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs(ok[mask].mean() - conf[mask].mean())
    return float(total)


def latency_ms(route_one: Callable[[str], object], texts: Sequence[str]) -> dict[str, float]:
    """Single-request latency (the embedding included), sequential, after a warm-up."""
    for text in texts[:WARMUP]:
        route_one(text)
    timings = []
    for text in texts:
        start = time.perf_counter()
        route_one(text)
        timings.append((time.perf_counter() - start) * 1000)
    return {
        "n": len(timings),
        "p50": round(float(np.percentile(timings, 50)), 2),
        "p99": round(float(np.percentile(timings, 99)), 2),
        "mean": round(statistics.fmean(timings), 2),
    }


def throughput_rps(route_batch: Callable[[list[str]], object], texts: Sequence[str]) -> dict[str, float]:
    """Requests/s of one batched call over ``texts``, median of a few repeats."""
    batch = list(texts)
    route_batch(batch[:WARMUP])
    rates = []
    for _ in range(THROUGHPUT_REPEATS):
        start = time.perf_counter()
        route_batch(batch)
        rates.append(len(batch) / (time.perf_counter() - start))
    return {"batch": len(batch), "median": round(statistics.median(rates), 1), "max": round(max(rates), 1)}


def machine() -> dict[str, object]:
    """Where the numbers were taken: a loaded machine makes every timing worse."""
    load1, load5, load15 = os.getloadavg()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg": [round(load1, 2), round(load5, 2), round(load15, 2)],
    }


def write_result(name: str, payload: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path
