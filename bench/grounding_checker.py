"""Grounding checker quality and latency on the labelled set bench/data/grounding.

    .venv/bin/python -m bench.grounding_checker      # writes bench/results/grounding_checker.json

The set: answer sentences over passages quoted from retrieval/samples (dev.jsonl and
test.jsonl, split by source document). A row is flagged when any finding of the checker
overlaps its target sentence; the three negative labels (wrong_number,
unsupported_claim, contradiction) are the positives.

1. Each claim's measures (lexical share, encoder cosine, threshold-free findings) are
   computed once per split with the bundled MiniLM, loaded as the app's API process
   loads it (one torch thread, precision "auto").
2. The operating point (lexical weight, support threshold) is chosen on DEV: the highest
   recall on unsupported sentences at precision >= 0.80 (ties: higher precision).
3. TEST is reported at that point, never tuned on: recall, precision, recall per label
   and per wrong-value kind, and the same for the lexical-only checker.
4. Latency per answer: 5-sentence answers with 4 passages (3 of a document and 1 of
   another), built from TEST rows; cold (passage analyses and vectors not cached) and
   warm (the passages seen before), p50/p99 ms, one thread. Reported, never asserted.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backend.grounding.checker import GroundingChecker, Judgement
from bench.router_common import machine, write_result
from router.encoder import SentenceTransformerEncoder, bundled_minilm_path

DATA = Path(__file__).resolve().parent / "data" / "grounding"
NEGATIVE = ("wrong_number", "unsupported_claim", "contradiction")
MIN_PRECISION = 0.80
WEIGHTS = [round(0.05 * i, 2) for i in range(21)]
THRESHOLDS = [round(0.01 * i, 2) for i in range(20, 96)]

Row = dict[str, Any]


def load(split: str) -> list[Row]:
    return [json.loads(line) for line in (DATA / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def judged(checker: GroundingChecker, rows: Sequence[Row]) -> list[list[Judgement]]:
    return [checker.judge(r["answer"], [tuple(p) for p in r["passages"]]) for r in rows]


def flagged(checker: GroundingChecker, row: Row, judgements: list[Judgement], threshold: float) -> bool:
    result = checker.verdict(judgements, threshold)
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


def calibrate(
    checker: GroundingChecker, rows: Sequence[Row], judgements: list[list[Judgement]], weights: Sequence[float]
) -> tuple[float, float, dict[str, Any]]:
    """The (weight, threshold) with the best DEV recall at precision >= MIN_PRECISION."""
    best: tuple[float, float, float, float] | None = None
    for w in weights:
        checker.lexical_weight = w
        for t in THRESHOLDS:
            s = scores([flagged(checker, r, j, t) for r, j in zip(rows, judgements, strict=True)], rows)
            if s["precision"] is None or s["precision"] < MIN_PRECISION:
                continue
            key = (s["recall"], s["precision"], w, t)
            if best is None or key[:2] > best[:2]:
                best = key
    if best is None:
        raise SystemExit("no operating point reaches the precision floor on DEV")
    _, _, w, t = best
    checker.lexical_weight = w
    return w, t, scores([flagged(checker, r, j, t) for r, j in zip(rows, judgements, strict=True)], rows)


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


def latency(checker_factory: Any, items: Sequence[tuple[str, list[tuple[int, str]]]], rounds: int) -> dict[str, Any]:
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

    return {"answers": len(cold), "cold": pct(cold), "warm_passages_cached": pct(warm)}


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
        "machine": machine(),
    }
    for name, checker, weights in (
        ("encoder", GroundingChecker(encoder), WEIGHTS),
        ("lexical_only", GroundingChecker(), [1.0]),
    ):
        dev_j, test_j = judged(checker, dev), judged(checker, test)
        w, t, dev_scores = calibrate(checker, dev, dev_j, weights)
        test_scores = scores([flagged(checker, r, j, t) for r, j in zip(test, test_j, strict=True)], test)
        misses = [
            {"id": r["id"], "label": r["label"], "sentence": r["sentence"]}
            for r, j in zip(test, test_j, strict=True)
            if (r["label"] in NEGATIVE) != flagged(checker, r, j, t)
        ]
        result[name] = {
            "lexical_weight": w,
            "support_threshold": t,
            "dev": dev_scores,
            "test": test_scores,
            "test_errors": misses,
        }
        print(f"{name}: weight {w} threshold {t}")
        for split, s in (("dev", dev_scores), ("test", test_scores)):
            print(
                f"  {split}: recall {s['recall']} precision {s['precision']} "
                f"wrong numbers {s['wrong_numbers_durations_dates_amounts_caught']} per label "
                + ", ".join(f"{k} {v['flagged']}" for k, v in s["per_label"].items())
            )
    w, t = result["encoder"]["lexical_weight"], result["encoder"]["support_threshold"]
    items = answers(test)
    latency(lambda: GroundingChecker(encoder, support_threshold=t, lexical_weight=w), items[:3], 1)  # warm-up
    result["latency_5_sentences_4_passages"] = {
        "encoder": latency(lambda: GroundingChecker(encoder, support_threshold=t, lexical_weight=w), items, 3),
        "lexical_only": latency(lambda: GroundingChecker(), items, 3),
    }
    print(json.dumps(result["latency_5_sentences_4_passages"], indent=1))
    print("wrote", write_result("grounding_checker", result))


if __name__ == "__main__":
    main()
