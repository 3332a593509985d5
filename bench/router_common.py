"""What the router benchmark's two sides share: data, metrics, timing, results.

Data: the shipped training set (router.dataset.SEED_FILES: train.jsonl and
router/data/broad/*.jsonl) split into fit and validation rows exactly as train_gate
splits it, the held-out test split (test.jsonl), the follow-ups (conversations.jsonl)
and the public dev set (docs/router-public-dev.md). The dev set lives outside the
repository (``--dev PATH``, else $EXPERTGATE_ROUTER_DEV, else
/work/router-dev/public_dev.jsonl); when it is missing the dev columns are skipped, with
a loud line that says so. Only counts and scores of it are ever written, never its text.

Imported by bench.router_bench (our gates and the baselines, main venv) and
bench.router_peer (semantic-router, its own venv), so it needs only numpy and the
framework-free parts of router/ (router.dataset, router.metrics, router.encoder): nothing
from backend/.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from router.dataset import SEED_DIR, SEED_FILES, Example, load_examples, load_jsonl, stratified_split
from router.metrics import GENERALIST, classification_report

EXPERTS = ("code", "legal", "support", GENERALIST)
RESULTS = Path(__file__).resolve().parent / "results"
CONVERSATIONS = SEED_DIR / "conversations.jsonl"
DEV_ENV = "EXPERTGATE_ROUTER_DEV"
DEV_DEFAULT = Path("/work/router-dev/public_dev.jsonl")
# The split train_gate uses (TrainConfig defaults): the peer is tuned on the same rows.
VAL_FRACTION = 0.15
SPLIT_SEED = 7
WARMUP = 20
SHORT_CHARS = 80  # "one short request": the latency target of issue 3
THROUGHPUT_REPEATS = 3
PROTOCOL = "@@timing "  # prefix of the lines bench.router_compare reads from a side
# The sets in a result file's "sets": every system routes each text alone; the gates also
# route the follow-ups with their conversation (FOLLOW_UPS_CONTEXT).
TEST, DEV, FOLLOW_UPS, FOLLOW_UPS_CONTEXT = "test", "dev", "follow_ups_text_only", "follow_ups_with_context"


@dataclass(frozen=True)
class Splits:
    fit: list[Example]  # the shipped training set less the validation rows
    val: list[Example]  # its validation rows: all tuning happens here
    test: list[Example]  # test.jsonl: held out, measured once per side


@dataclass(frozen=True)
class DevRow:
    """A row of the public dev set: a real request, its label and the dataset it came from."""

    text: str
    domain: str
    source: str


@dataclass(frozen=True)
class Turn:
    """A follow-up from conversations.jsonl: the new text, the user turns before it and
    the expert that answered the last turn."""

    text: str
    domain: str
    history: tuple[str, ...]
    previous_expert: str | None


@dataclass(frozen=True)
class EvalSet:
    """Texts every system routes (on their text alone), with their labels."""

    name: str  # TEST, DEV or FOLLOW_UPS
    texts: list[str]
    truth: list[str]
    sources: list[str] | None = None  # the dev set's source of each row


def eval_sets(test: Sequence[Example], dev: Sequence[DevRow] | None, turns: Sequence[Turn]) -> list[EvalSet]:
    """The held-out split, the public dev set (if present) and the follow-ups' texts."""
    out = [EvalSet(TEST, [e.text for e in test], [e.domain for e in test])]
    if dev is not None:
        out.append(EvalSet(DEV, [r.text for r in dev], [r.domain for r in dev], [r.source for r in dev]))
    out.append(EvalSet(FOLLOW_UPS, [t.text for t in turns], [t.domain for t in turns]))
    return out


def splits() -> Splits:
    """The shipped training set split as train_gate splits it, and the test split."""
    fit, val = stratified_split(load_examples(SEED_FILES), VAL_FRACTION, SPLIT_SEED)
    return Splits(fit, val, load_jsonl(SEED_DIR / "test.jsonl"))


def dev_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dev",
        type=Path,
        default=Path(os.environ.get(DEV_ENV) or DEV_DEFAULT),
        help=f"the public dev set (default: ${DEV_ENV}, else {DEV_DEFAULT}; here: %(default)s)",
    )


def dev_set(path: Path) -> list[DevRow] | None:
    """The public dev set's rows, or None (with a loud line saying why) when it is missing."""
    if not path.is_file():
        print(
            f"!!! PUBLIC DEV SET MISSING: {path} does not exist, so every dev column is skipped. "
            f"Build it with bench/router_public_dev.py (docs/router-public-dev.md), "
            f"then pass --dev PATH or set ${DEV_ENV}.",
            flush=True,
        )
        return None
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append(DevRow(row["text"], row["domain"], row["source"]))
    return rows


def dev_summary(path: Path, rows: Sequence[DevRow] | None) -> dict[str, object]:
    """What a result file says about the dev set: where it was, its hash and counts (no text)."""
    if rows is None:
        return {"path": str(path), "skipped": "file not found"}
    counts = Counter(r.source for r in rows)
    domain = {r.source: r.domain for r in rows}
    return {
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "n": len(rows),
        "sources": {s: {"domain": domain[s], "n": counts[s]} for s in sorted(counts)},
    }


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


def per_source(truth: Sequence[str], predicted: Sequence[str], sources: Sequence[str]) -> dict[str, object]:
    """Accuracy per source (each source has one label, so this is that label's recall there)."""
    hits: dict[str, list[bool]] = defaultdict(list)
    domain: dict[str, str] = {}
    for t, p, s in zip(truth, predicted, sources, strict=True):
        hits[s].append(t == p)
        domain[s] = t
    return {
        s: {"domain": domain[s], "n": len(ok), "accuracy": round(sum(ok) / len(ok), 4)}
        for s, ok in sorted(hits.items())
    }


def evaluation(
    data: EvalSet, predicted: Sequence[str], confidence: Sequence[float], correct: Sequence[bool]
) -> dict[str, object]:
    """One system on one set: :func:`quality` (per-expert recall included), the ECE of its
    stated top-1 confidence against ``correct``, and the accuracy per source if ``data`` has them."""
    out = {**quality(data.truth, predicted), "ece": round(ece_top1(confidence, correct), 4)}
    if data.sources is not None:
        out["per_source"] = per_source(data.truth, predicted, data.sources)
    return out


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


@dataclass(frozen=True)
class Timed:
    """One system to time: route one text, embed one text alone, route a batch."""

    route_one: Callable[[str], object]
    encode_one: Callable[[str], object]
    route_batch: Callable[[list[str]], object]


class TimingPlan:
    """Latency and throughput measurements, cut into steps of a few seconds each.

    Run alone (:meth:`run_local`), or driven over stdin/stdout (:meth:`serve`) by
    bench.router_compare, which gives the steps of both processes turns, one at a time:
    our gate and semantic-router are then timed under the same momentary machine load,
    and never at the same time.

    Latency is per single request, the embedding included, one at a time. Each text is
    also embedded alone, right before or after its routing call (the order alternates),
    so ``overhead`` (routing minus embedding, per text) is the router's own cost on top
    of the shared encoder, measured under the same load. Throughput is one batched call
    over all texts, a few times. Both also record the process's CPU time per request,
    which depends far less on what else runs on the machine than wall-clock time does.
    """

    def __init__(self, systems: dict[str, Timed], texts: Sequence[str], chunk: int = 50) -> None:
        self.systems = systems
        self.texts = list(texts)
        self.chunk = chunk
        n_chunks = -(-len(self.texts) // chunk)
        self.steps = ["warmup", *(f"latency:{i}" for i in range(n_chunks))]
        self.steps += [f"throughput:{i}" for i in range(THROUGHPUT_REPEATS)]
        self._routed: dict[str, list[float]] = {n: [] for n in systems}
        self._encoded: dict[str, list[float]] = {n: [] for n in systems}
        self._rates: dict[str, list[float]] = {n: [] for n in systems}
        # CPU time of the whole process (every thread): what a request costs, whatever
        # else the machine is doing at that moment.
        self._route_cpu: dict[str, list[float]] = {n: [] for n in systems}
        self._batch_cpu: dict[str, list[float]] = {n: [] for n in systems}

    def run_step(self, name: str, step: str) -> None:
        system = self.systems[name]
        kind, _, index = step.partition(":")
        if kind == "warmup":
            for text in self.texts[:WARMUP]:
                system.route_one(text)
                system.encode_one(text)
            system.route_batch(self.texts[:WARMUP])
        elif kind == "latency":
            first = int(index) * self.chunk
            for i, text in enumerate(self.texts[first : first + self.chunk], start=first):
                steps = [(system.route_one, self._routed[name]), (system.encode_one, self._encoded[name])]
                for fn, sink in steps if i % 2 == 0 else steps[::-1]:
                    cpu, start = time.process_time(), time.perf_counter()
                    fn(text)
                    sink.append((time.perf_counter() - start) * 1000)
                    if fn is system.route_one:
                        self._route_cpu[name].append((time.process_time() - cpu) * 1000)
        elif kind == "throughput":
            cpu, start = time.process_time(), time.perf_counter()
            system.route_batch(self.texts)
            self._rates[name].append(len(self.texts) / (time.perf_counter() - start))
            self._batch_cpu[name].append((time.process_time() - cpu) * 1000 / len(self.texts))
        else:
            raise ValueError(f"unknown step {step!r}")

    def run_local(self) -> None:
        for step in self.steps:
            for name in self.systems:
                self.run_step(name, step)

    def serve(self, inp: TextIO, out: TextIO) -> None:
        """Announce the systems and steps, then run ``RUN name step`` lines until ``END``."""
        print(f"{PROTOCOL}READY {','.join(self.systems)} {' '.join(self.steps)}", file=out, flush=True)
        for line in inp:
            words = line.split()
            if words == ["END"]:
                return
            if len(words) != 3 or words[0] != "RUN":
                raise ValueError(f"bad timing command {line!r}")
            self.run_step(words[1], words[2])
            print(f"{PROTOCOL}DONE", file=out, flush=True)

    def latency(self, name: str, short_chars: int = SHORT_CHARS) -> dict[str, object]:
        routed, encoded = self._routed[name], self._encoded[name]
        short = [t for text, t in zip(self.texts, routed, strict=True) if len(text) <= short_chars]
        overhead = [r - e for r, e in zip(routed, encoded, strict=True)]
        return {
            "n": len(routed),
            "p50": _pct(routed, 50),
            "p99": _pct(routed, 99),
            "mean": round(statistics.fmean(routed), 2),
            "short": {"n": len(short), "max_chars": short_chars, "p50": _pct(short, 50), "p99": _pct(short, 99)},
            "encoder_only": {"p50": _pct(encoded, 50), "p99": _pct(encoded, 99)},
            "overhead": {"p50": _pct(overhead, 50), "p99": _pct(overhead, 99)},
            "cpu_ms": {"p50": _pct(self._route_cpu[name], 50), "p99": _pct(self._route_cpu[name], 99)},
        }

    def throughput(self, name: str) -> dict[str, object]:
        rates = self._rates[name]
        return {
            "batch": len(self.texts),
            "median": round(statistics.median(rates), 1),
            "max": round(max(rates), 1),
            "cpu_ms_per_request": round(statistics.median(self._batch_cpu[name]), 2),
        }


def timing_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    parser.add_argument(
        "--serve-timing", action="store_true", help="take timing turns from bench.router_compare over stdin/stdout"
    )


def run_timing(plan: TimingPlan, serve: bool) -> None:
    if serve:
        plan.serve(sys.stdin, sys.stdout)
    else:
        plan.run_local()


def _pct(values: Sequence[float], p: float) -> float:
    return round(float(np.percentile(values, p)), 2) if len(values) else 0.0


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
