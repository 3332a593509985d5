"""Grounding checker quality and latency on the labelled set bench/data/grounding.

    .venv/bin/python -m bench.grounding_checker      # writes bench/results/grounding_checker.json

The set: answer sentences over passages quoted from retrieval/samples (dev.jsonl and
test.jsonl, split by source document). A row is flagged when any finding of the checker
overlaps its target sentence; the three negative labels (wrong_number,
unsupported_claim, contradiction) are the positives.

1. Each claim's measures (lexical share, encoder cosine, threshold-free findings) are
   computed once per split with the bundled MiniLM, loaded as the app's API process
   loads it (one torch thread, precision "auto"); every claim without a finding is
   encoded here, so the lexical bounds are calibrated on the same measures.
2. The operating point (lexical accept/reject bounds, weight, support threshold) is
   chosen on DEV: the fewest supported sentences flagged at recall >= MIN_RECALL and
   precision >= MIN_PRECISION (ties: higher recall, precision, fewer claims encoded).
3. TEST is reported at that point, never tuned on: recall, precision, recall per label
   and per wrong-value kind, and the same for the lexical-only checker.
4. Latency per answer: 5-sentence answers with 4 passages (3 of a document and 1 of
   another), built from TEST rows; new passages (a fresh checker: nothing cached) and
   passages cached (the same answer again), p50/p99 ms, one thread; also for a checker
   that encodes every claim and passage sentence (the cost before the lexical bounds).
   Reported, never asserted.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.grounding.checker import GroundingChecker, Judgement
from bench.router_common import machine, write_result
from router.encoder import SentenceTransformerEncoder, bundled_minilm_path

DATA = Path(__file__).resolve().parent / "data" / "grounding"
NEGATIVE = ("wrong_number", "unsupported_claim", "contradiction")
MIN_PRECISION = 0.80
# The target is recall >= 0.90; DEV is held to 0.95 so that TEST keeps a margin.
MIN_RECALL = 0.95
WEIGHTS = [round(0.1 * i, 1) for i in range(11)]
THRESHOLDS = [round(0.01 * i, 2) for i in range(30, 96)]
ACCEPT = [0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, math.inf]
REJECT = [0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]

Row = dict[str, Any]


def load(split: str) -> list[Row]:
    return [json.loads(line) for line in (DATA / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def judged(checker: GroundingChecker, rows: Sequence[Row]) -> list[list[Judgement]]:
    return [checker.judge(r["answer"], [tuple(p) for p in r["passages"]], encode_all=True) for r in rows]


def flagged(checker: GroundingChecker, row: Row, judgements: list[Judgement]) -> bool:
    result = checker.verdict(judgements)
    return any(u.start < row["end"] and u.end > row["start"] for u in result.unsupported)


def scores(flags: Sequence[bool], rows: Sequence[Row]) -> dict[str, Any]:
    gold = [r["label"] in NEGATIVE for r in rows]
    tp = sum(f and g for f, g in zip(flags, gold, strict=True))
    fp = sum(f and not g for f, g in zip(flags, gold, strict=True))
    positives = sum(gold)
    per_label = {}
    for label in ("supported", *NEGATIVE):
        hits = [f for f, r in zip(flags, rows, strict=True) if r["label"] == label]
        per_label[label] = {"n": len(hits), "flagged": round(sum(hits) / len(hits), 4) if hits else None}
    per_kind = {}
    for kind in sorted({r["kind"] for r in rows if r["kind"]}):
        hits = [f for f, r in zip(flags, rows, strict=True) if r["kind"] == kind]
        per_kind[kind] = {"n": len(hits), "caught": round(sum(hits) / len(hits), 4)}
    numeric = [f for f, r in zip(flags, rows, strict=True) if r["kind"] and r["kind"] != "name"]
    return {
        "recall": round(tp / positives, 4) if positives else None,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "false_positive_rate": round(fp / (len(rows) - positives), 4),
        "per_label": per_label,
        "wrong_values_by_kind": per_kind,
        "wrong_numbers_durations_dates_amounts_caught": round(sum(numeric) / len(numeric), 4) if numeric else None,
        "n": len(rows),
    }


@dataclass(frozen=True)
class Point:
    """An operating point: lexical bounds, weight, threshold (GroundingChecker's)."""

    accept: float
    reject: float
    weight: float
    threshold: float

    def apply(self, checker: GroundingChecker) -> None:
        checker.lexical_accept, checker.lexical_reject = self.accept, self.reject
        checker.lexical_weight, checker.support_threshold = self.weight, self.threshold


def _claims(rows: Sequence[Row], judgements: list[list[Judgement]]) -> tuple[np.ndarray, ...]:
    """Each (row, claim overlapping its sentence): row index, whether a finding of the
    claim overlaps the sentence, lexical share, semantic (NaN: not measured)."""
    at, found, lexical, semantic = [], [], [], []
    for i, (r, js) in enumerate(zip(rows, judgements, strict=True)):
        for j in js:
            if j.claim.start < r["end"] and j.claim.end > r["start"]:
                at.append(i)
                found.append(any(u.start < r["end"] and u.end > r["start"] for u in j.findings))
                lexical.append(j.lexical)
                semantic.append(np.nan if j.semantic is None else j.semantic)
    return np.array(at, dtype=int), np.array(found), np.array(lexical), np.array(semantic)


def sweep(rows: Sequence[Row], judgements: list[list[Judgement]], points: Sequence[Point]) -> list[dict[str, float]]:
    """Recall, precision, false-flag rate and the share of claims the encoder sees, at
    each point: GroundingChecker.verdict's rule, vectorised (the chosen point is then
    re-scored through the checker itself)."""
    at, found, lexical, semantic = _claims(rows, judgements)
    gold = np.array([r["label"] in NEGATIVE for r in rows])
    out = []
    for pt in points:
        support = pt.weight * lexical + (1 - pt.weight) * np.nan_to_num(semantic)
        middle = (lexical >= pt.reject) & (lexical < pt.accept)
        ok = (lexical >= pt.accept) | (middle & (support >= pt.threshold))
        flag_claim = found | ~ok
        flags = np.zeros(len(rows), dtype=bool)
        np.logical_or.at(flags, at, flag_claim)
        tp, fp = int((flags & gold).sum()), int((flags & ~gold).sum())
        out.append(
            {
                "recall": tp / gold.sum(),
                "precision": tp / (tp + fp) if tp + fp else 0.0,
                "false_flag_rate": fp / (~gold).sum(),
                "encoded": float((middle & ~found).mean()),
            }
        )
    return out


def calibrate(
    checker: GroundingChecker, rows: Sequence[Row], judgements: list[list[Judgement]], points: Sequence[Point]
) -> tuple[Point, dict[str, Any]]:
    """The point with the fewest supported DEV sentences flagged among those with
    recall >= MIN_RECALL and precision >= MIN_PRECISION (ties: higher recall, higher
    precision, fewer claims encoded); set on ``checker``, with its DEV scores."""
    measured = sweep(rows, judgements, points)
    eligible = [
        (m["false_flag_rate"], -m["recall"], -m["precision"], m["encoded"], i)
        for i, m in enumerate(measured)
        if m["recall"] >= MIN_RECALL and m["precision"] >= MIN_PRECISION
    ]
    if not eligible:
        raise SystemExit("no operating point reaches the recall and precision floors on DEV")
    point = points[min(eligible)[-1]]
    point.apply(checker)
    return point, scores([flagged(checker, r, j) for r, j in zip(rows, judgements, strict=True)], rows)


def answers(rows: Sequence[Row], n: int = 5) -> list[tuple[str, list[tuple[int, str]]]]:
    """5-sentence answers over 4 passages: a document's sentences in groups of five."""
    by_doc: dict[str, list[Row]] = {}
    for r in rows:
        by_doc.setdefault(r["doc"], []).append(r)
    out = []
    for doc_rows in by_doc.values():
        passages = [tuple(p) for p in doc_rows[0]["passages"]][:4]
        for i in range(0, len(doc_rows) - n + 1, 3):
            sentences = [r["sentence"] for r in doc_rows[i : i + n]]
            text = "Here is what I found.\n\n" + " ".join(sentences[:3]) + "\n\n- " + "\n- ".join(sentences[3:])
            out.append((text, passages))
    return out


def latency(
    checker_factory: Callable[[], GroundingChecker], items: Sequence[tuple[str, list[tuple[int, str]]]], rounds: int
) -> dict[str, Any]:
    cold, warm = [], []
    for _ in range(rounds):
        for text, passages in items:
            checker = checker_factory()
            t = time.perf_counter()
            checker.check(text, passages)
            cold.append(1000 * (time.perf_counter() - t))
            t = time.perf_counter()
            checker.check(text, passages)
            warm.append(1000 * (time.perf_counter() - t))

    def pct(xs: list[float]) -> dict[str, float]:
        xs = sorted(xs)
        return {
            "p50_ms": round(statistics.median(xs), 2),
            "p99_ms": round(xs[min(len(xs) - 1, int(0.99 * len(xs)))], 2),
        }

    return {"answers": len(cold), "new_passages": pct(cold), "passages_cached": pct(warm)}


def main() -> None:
    dev, test = load("dev"), load("test")
    encoder = SentenceTransformerEncoder(bundled_minilm_path(), name="all-MiniLM-L6-v2", threads=1, precision="auto")
    result: dict[str, Any] = {
        "data": {
            s: {"rows": len(r), "labels": dict(Counter(x["label"] for x in r)), "documents": len({x["doc"] for x in r})}
            for s, r in (("dev", dev), ("test", test))
        },
        "encoder": {"name": encoder.name, "precision": encoder.precision},
        "min_precision": MIN_PRECISION,
        "min_recall": MIN_RECALL,
        "machine": machine(),
    }
    grids = {
        "encoder": [Point(a, r, w, t) for a in ACCEPT for r in REJECT if r <= a for w in WEIGHTS for t in THRESHOLDS],
        "lexical_only": [Point(t, t, 1.0, t) for t in THRESHOLDS],
    }
    for name, checker in (("encoder", GroundingChecker(encoder)), ("lexical_only", GroundingChecker())):
        # Every claim without a finding encoded: the lexical bounds are calibrated on it.
        dev_j, test_j = judged(checker, dev), judged(checker, test)
        point, dev_scores = calibrate(checker, dev, dev_j, grids[name])
        test_scores = scores([flagged(checker, r, j) for r, j in zip(test, test_j, strict=True)], test)
        misses = [
            {"id": r["id"], "label": r["label"], "sentence": r["sentence"]}
            for r, j in zip(test, test_j, strict=True)
            if (r["label"] in NEGATIVE) != flagged(checker, r, j)
        ]
        [dev_encoded] = [m["encoded"] for m in sweep(dev, dev_j, [point])]
        result[name] = {
            "lexical_accept": point.accept,
            "lexical_reject": point.reject,
            "lexical_weight": point.weight,
            "support_threshold": point.threshold,
            "candidates": checker.candidates if name == "encoder" else None,
            "dev_claims_encoded": round(dev_encoded, 4),
            "dev": dev_scores,
            "test": test_scores,
            "test_errors": misses,
        }
        print(f"{name}: {point} (DEV claims encoded {dev_encoded:.2f})")
        for split, s in (("dev", dev_scores), ("test", test_scores)):
            print(
                f"  {split}: recall {s['recall']} precision {s['precision']} false flags {s['false_positive_rate']} "
                f"wrong numbers {s['wrong_numbers_durations_dates_amounts_caught']} per label "
                + ", ".join(f"{k} {v['flagged']}" for k, v in s["per_label"].items())
            )
    e = result["encoder"]
    calibrated = dict(
        support_threshold=e["support_threshold"],
        lexical_weight=e["lexical_weight"],
        lexical_accept=e["lexical_accept"],
        lexical_reject=e["lexical_reject"],
    )
    factories: dict[str, Callable[[], GroundingChecker]] = {
        "encoder": lambda: GroundingChecker(encoder, **calibrated),
        # The cost before the lexical bounds: every claim and every passage sentence encoded.
        "encoder_every_claim_and_sentence": lambda: GroundingChecker(
            encoder, lexical_accept=math.inf, lexical_reject=0.0, candidates=None
        ),
        "lexical_only": lambda: GroundingChecker(),
    }
    items = answers(test)
    latency(factories["encoder_every_claim_and_sentence"], items[:3], 1)  # warm-up
    result["latency_5_sentences_4_passages"] = {name: latency(make, items, 3) for name, make in factories.items()}
    print(json.dumps(result["latency_5_sentences_4_passages"], indent=1))
    print("wrote", write_result("grounding_checker", result))


if __name__ == "__main__":
    main()
