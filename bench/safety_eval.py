"""How well the input safety check works: recall, false positives, robustness, cost.

    python -m bench.safety_eval                       # our held-out split
    python -m bench.safety_eval --public DIR          # also public sets (evaluation only)

On our held-out split (rows the model never saw, router/safety/data.py):
- recall on our attacks at the shipped threshold, per label and per plan cell;
- false positives on the hard benign rows and on the router's held-out split (ordinary
  traffic), and on both together (the issue's budget: 1%);
- robustness: each held-out attack with an ordinary held-out request before or after it
  (the recall drop, budget 2 points), for one pairing of record and others beside it
  (other seeds; with ``--public``, public requests as the padding);
- the check's own time per request with the embedding given (the request has it).

``--public DIR``: a folder of public prompt files read at a pinned commit and never
committed (docs/safety.md names them and their licences): ``*.jsonl`` rows with
``text`` and ``label`` (``attack`` or ``benign``), written by a small converter per
source. Results go to bench/results/safety.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from router.encoder import SentenceTransformerEncoder, bundled_minilm_path
from router.safety.data import BENIGN, SafetyExample, load_split
from router.safety.model import SHIPPED, SafetyModel
from router.safety.reader import SHIPPED_READER, SafetyReader, second_reading
from router.safety.train import ENCODER, VectorCache, padded

RESULTS = Path(__file__).resolve().parent / "results" / "safety.json"


def _flags(
    model: SafetyModel, rows: Sequence[SafetyExample], cache: VectorCache, reader: SafetyReader | None
) -> list[tuple[bool, str]]:
    """(flagged, top category) per row, as the server reads it (backend/guard/safety.py):
    SafetyModel.score_turns, and the reader's second reading for the rows in its band. A
    conversation's row is read as its last message with the earlier turns."""
    out = []
    # a conversation's vector is its last message's, as the request's is
    vectors = cache.encode([r.turns[-1] if r.turns else r.text for r in rows])
    threshold = model.manifest.threshold
    for row, vector in zip(rows, vectors, strict=True):
        text, history = (row.turns[-1], row.turns[:-1]) if row.turns else (row.text, ())
        scores = model.score_turns(text, history, vector, cache.encode)
        if reader is not None and reader.wanted(scores, threshold):
            scores = second_reading(scores, reader.read(text, history), reader.manifest, threshold)
        top, value = scores.top
        out.append((value >= model.manifest.threshold, top))
    return out


def _rate(flags: Sequence[tuple[bool, str]]) -> float:
    return round(sum(f for f, _ in flags) / len(flags), 4) if flags else float("nan")


def evaluate(
    model: SafetyModel, cache: VectorCache, public: Path | None, reader: SafetyReader | None = None
) -> dict[str, object]:
    split = load_split()
    attacks = [r for r in split.test if r.label != BENIGN]
    hard = [r for r in split.test if r.label == BENIGN]
    traffic = split.router_test
    attack_flags = _flags(model, attacks, cache, reader)
    hard_flags, traffic_flags = _flags(model, hard, cache, reader), _flags(model, traffic, cache, reader)
    by_label: dict[str, list[tuple[bool, str]]] = defaultdict(list)
    by_cell: dict[str, list[tuple[bool, str]]] = defaultdict(list)
    for row, flag in zip(attacks, attack_flags, strict=True):
        by_label[row.label].append(flag)
        by_cell[row.cell].append(flag)
    right_category = sum(top == row.label for row, (f, top) in zip(attacks, attack_flags, strict=True) if f)
    pad_flags = _flags(model, padded(attacks, hard + traffic, seed=5), cache, reader)
    # The same test with other pairings, and with public requests as the padding (when
    # given): one pairing is a sample, and the units were tuned with seed 5's in view.
    paddings = {f"ours, seed {seed}": padded(attacks, hard + traffic, seed=seed) for seed in (7, 11)}
    if public is not None and (public / "public_benign_requests.jsonl").exists():
        requests = [SafetyExample(r["text"], BENIGN) for r in _rows(public / "public_benign_requests.jsonl")]
        paddings |= {f"public requests, seed {seed}": padded(attacks, requests, seed=seed) for seed in (5, 9, 13)}
    other_drops = {
        name: round(100 * (_rate(attack_flags) - _rate(_flags(model, rows, cache, reader))), 2)
        for name, rows in paddings.items()
    }
    report: dict[str, object] = {
        "model": model.version,
        "reader": reader.version if reader is not None else None,
        "threshold": model.manifest.threshold,
        "held_out": {
            "attacks": len(attacks),
            "recall": _rate(attack_flags),
            "recall_by_label": {k: _rate(v) for k, v in sorted(by_label.items())},
            "recall_by_cell": {k: _rate(v) for k, v in sorted(by_cell.items())},
            "category_right_when_flagged": round(right_category / max(1, sum(f for f, _ in attack_flags)), 4),
            "padded_recall": _rate(pad_flags),
            "padded_recall_drop_points": round(100 * (_rate(attack_flags) - _rate(pad_flags)), 2),
            "padded_recall_drop_points_other_paddings": other_drops,
            "hard_benign": len(hard),
            "fpr_hard_benign": _rate(hard_flags),
            "router_test": len(traffic),
            "fpr_router_test": _rate(traffic_flags),
            "fpr_benign_all": _rate(hard_flags + traffic_flags),
            "false_positives": [
                r.text[:160] for r, (f, _) in zip(hard + traffic, hard_flags + traffic_flags, strict=True) if f
            ][:40],
            "missed": [f"{r.cell} {r.text[:160]}" for r, (f, _) in zip(attacks, attack_flags, strict=True) if not f][
                :60
            ],
        },
        "latency": _latency(model, cache, [r.text for r in traffic[:300]], reader),
    }
    if public is not None:
        report["public"] = _public(model, cache, public, reader)
    return report


def _latency(
    model: SafetyModel, cache: VectorCache, texts: Sequence[str], reader: SafetyReader | None
) -> dict[str, float]:
    """The check's time per request with its embedding given (what the pipeline adds)."""
    vectors = cache.encode(texts)
    times = []
    read = 0
    threshold = model.manifest.threshold
    for text, vector in zip(texts, vectors, strict=True):
        started = time.perf_counter()
        scores = model.score(text, vector, cache.encoder.encode)  # extra pieces encoded for real
        if reader is not None and reader.wanted(scores, threshold):
            reader.probabilities([text])  # the second reading's pass, for real
            read += 1
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(0.95 * len(times))], 3),
        "read_again": round(read / len(texts), 4),
    }


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def _public(model: SafetyModel, cache: VectorCache, folder: Path, reader: SafetyReader | None) -> dict[str, object]:
    out: dict[str, object] = {}
    for path in sorted(folder.glob("*.jsonl")):
        rows = _rows(path)
        rng = random.Random(3)
        rng.shuffle(rows)
        rows = rows[:2000]
        examples = [SafetyExample(r["text"], "injection" if r["label"] == "attack" else BENIGN) for r in rows]
        flags = _flags(model, examples, cache, reader)
        attack = [f for e, f in zip(examples, flags, strict=True) if e.label != BENIGN]
        benign = [f for e, f in zip(examples, flags, strict=True) if e.label == BENIGN]
        out[path.stem] = {
            "attacks": len(attack),
            "recall": _rate(attack),
            "benign": len(benign),
            "fpr": _rate(benign),
        }
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED)
    parser.add_argument("--reader", default=str(SHIPPED_READER), help="the second reading's directory, or 'none'")
    parser.add_argument("--public", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "expertgate" / "safety-vectors.npz")
    args = parser.parse_args(argv)
    np.random.seed(0)
    cache = VectorCache(SentenceTransformerEncoder(bundled_minilm_path(), name=ENCODER), args.cache)
    reader = None
    if args.reader != "none":
        from backend.gate.wiring import bundled_encoder
        from backend.settings import Settings

        # as the server runs it: the tuned layers on the settings' encoder runtime
        reader = SafetyReader.load(Path(args.reader), bundled_encoder(Settings(), serving=False))
    report = evaluate(SafetyModel.load(args.model), cache, args.public, reader)
    cache.save()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: v for k, v in report["held_out"].items() if not isinstance(v, list | dict)}  # type: ignore[union-attr]
    print(json.dumps({**summary, "latency": report["latency"], "public": report.get("public")}, indent=2))


if __name__ == "__main__":
    main()
