"""PII detector quality on two labelled sets: precision, recall and F1 per type, the
false positives on hard negatives, and throughput.

- bench/data/pii_eval.jsonl (``dev``): written with the detector and used to fix it
  (three error classes found on its first run were fixed; see docs/governance.md);
- bench/data/pii_eval_holdout.jsonl (``holdout``): written after the detector was
  frozen and never tuned on: its figures are the honest estimate.

A prediction is a true positive when it has the gold entity's type and overlaps its
span (each gold entity matches at most one prediction); "exact" also requires the same
boundaries. The set was written by the detector's authors (realistic text, but no
adversary): read the figures as an upper bound on real traffic.

    .venv/bin/python -m bench.pii_eval              # writes bench/results/pii_eval.json
    PY_WITH_PRESIDIO -m bench.pii_eval --presidio   # also scores Presidio (blank spaCy)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from backend.guard.pii import PiiDetector, PiiType

SETS = {
    "dev": Path(__file__).resolve().parent / "data" / "pii_eval.jsonl",
    "holdout": Path(__file__).resolve().parent / "data" / "pii_eval_holdout.jsonl",
}
OUT = Path(__file__).resolve().parent / "results" / "pii_eval.json"

Span = tuple[int, int, str]  # start, end, type


def load(path: Path) -> list[tuple[str, list[Span]]]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text = row["text"]
        gold: list[Span] = []
        for ent in row["entities"]:
            start = text.index(ent["value"])
            gold.append((start, start + len(ent["value"]), ent["type"]))
        items.append((text, gold))
    return items


def score(items: list[tuple[str, list[Span]]], predict: Callable[[str], list[Span]]) -> dict[str, object]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    exact: Counter[str] = Counter()
    false_positives: list[dict[str, str]] = []
    misses: list[dict[str, str]] = []
    for text, gold in items:
        predicted = predict(text)
        used: set[int] = set()
        for g_start, g_end, g_type in gold:
            hit = next(
                (i for i, (p_start, p_end, p_type) in enumerate(predicted)
                 if i not in used and p_type == g_type and p_start < g_end and g_start < p_end),
                None,
            )  # fmt: skip
            if hit is None:
                fn[g_type] += 1
                misses.append({"type": g_type, "value": text[g_start:g_end], "text": text})
            else:
                used.add(hit)
                tp[g_type] += 1
                if predicted[hit][:2] == (g_start, g_end):
                    exact[g_type] += 1
        for i, (p_start, p_end, p_type) in enumerate(predicted):
            if i not in used:
                fp[p_type] += 1
                false_positives.append({"type": p_type, "value": text[p_start:p_end], "text": text})
    per_type = {}
    for t in sorted(set(tp) | set(fp) | set(fn)):
        p = tp[t] / (tp[t] + fp[t]) if tp[t] + fp[t] else 0.0
        r = tp[t] / (tp[t] + fn[t]) if tp[t] + fn[t] else 0.0
        per_type[t] = {
            "support": tp[t] + fn[t],
            "tp": tp[t], "fp": fp[t], "fn": fn[t],
            "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
            "exact_boundaries": exact[t],
        }  # fmt: skip
    all_tp, all_fp, all_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    p = all_tp / (all_tp + all_fp) if all_tp + all_fp else 0.0
    r = all_tp / (all_tp + all_fn) if all_tp + all_fn else 0.0
    return {
        "micro": {"precision": round(p, 3), "recall": round(r, 3),
                  "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
                  "tp": all_tp, "fp": all_fp, "fn": all_fn},
        "per_type": per_type,
        "false_positives": false_positives,
        "misses": misses,
    }  # fmt: skip


def throughput(predict: Callable[[str], list[Span]], texts: list[str], rounds: int) -> dict[str, float]:
    """Per-text latency (p50/p99, µs) and KB/s over the whole set, ``rounds`` passes."""
    per_call: list[float] = []
    chars = sum(len(t) for t in texts)
    started = time.perf_counter()
    for _ in range(rounds):
        for t in texts:
            t0 = time.perf_counter()
            predict(t)
            per_call.append((time.perf_counter() - t0) * 1e6)
    elapsed = time.perf_counter() - started
    per_call.sort()
    return {
        "p50_us": round(statistics.median(per_call), 1),
        "p99_us": round(per_call[int(len(per_call) * 0.99) - 1], 1),
        "kb_per_s": round(chars * rounds / 1024 / elapsed, 1),
    }


def ours() -> Callable[[str], list[Span]]:
    detector = PiiDetector()
    return lambda text: [(f.start, f.end, str(f.type)) for f in detector.find(text)]


def presidio() -> Callable[[str], list[Span]]:
    """Presidio's analyzer with a blank spaCy pipeline (no model can be downloaded here),
    so only its pattern recognizers run; its types mapped onto ours."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class BlankEngine(SpacyNlpEngine):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])

        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankEngine()
    engine.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=engine)
    analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry)
    mapping = {
        "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD",
        "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP", "US_SSN": "US_SSN", "UK_NINO": "UK_NINO",
    }  # fmt: skip

    def predict(text: str) -> list[Span]:
        results = analyzer.analyze(text, language="en", score_threshold=0.3)
        return [(r.start, r.end, mapping[r.entity_type]) for r in results if r.entity_type in mapping]

    return predict


def _dataset(path: Path, items: list[tuple[str, list[Span]]]) -> dict[str, object]:
    return {
        "file": f"bench/data/{path.name}",
        "texts": len(items),
        "with_pii": sum(1 for _, g in items if g),
        "hard_negatives": sum(1 for _, g in items if not g),
        "entities": sum(len(g) for _, g in items),
    }


def _print(name: str, r: dict[str, object]) -> None:
    micro, speed, per_type = r["micro"], r["speed"], r["per_type"]
    assert isinstance(micro, dict) and isinstance(speed, dict) and isinstance(per_type, dict)
    print(
        f"\n{name}: micro P={micro['precision']} R={micro['recall']} F1={micro['f1']}"
        f"  speed p50={speed['p50_us']}µs p99={speed['p99_us']}µs {speed['kb_per_s']} KB/s"
    )
    print(f"  {'type':<8} {'n':>3} {'P':>6} {'R':>6} {'F1':>6}")
    for t, m in per_type.items():
        print(f"  {t:<8} {m['support']:>3} {m['precision']:>6} {m['recall']:>6} {m['f1']:>6}")
    for fp in r["false_positives"]:  # type: ignore[attr-defined]
        print(f"  FP {fp['type']}: {fp['value']!r} in {fp['text'][:70]!r}")
    for miss in r["misses"]:  # type: ignore[attr-defined]
        print(f"  MISS {miss['type']}: {miss['value']!r} in {miss['text'][:70]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presidio", action="store_true", help="also score Presidio if installed")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    result: dict[str, object] = {
        "types": sorted(str(t) for t in PiiType),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
    }
    detectors: dict[str, Callable[[str], list[Span]]] = {"expertgate": ours()}
    if args.presidio:
        detectors["presidio_blank_spacy"] = presidio()
    existing = json.loads(OUT.read_text()) if OUT.exists() else {}
    for set_name, path in SETS.items():
        items = load(path)
        texts = [t for t, _ in items]
        block: dict[str, object] = {"dataset": _dataset(path, items)}
        print(
            f"== {set_name}: {len(items)} texts, {block['dataset']['entities']} entities, "  # type: ignore[index]
            f"{block['dataset']['hard_negatives']} hard negatives"
        )  # type: ignore[index]
        for name, predict in detectors.items():
            rounds = args.rounds if name == "expertgate" else max(1, args.rounds // 10)
            block[name] = {**score(items, predict), "speed": throughput(predict, texts, rounds)}
            _print(name, block[name])  # type: ignore[arg-type]
        previous = existing.get(set_name, {})
        if not args.presidio and "presidio_blank_spacy" in previous:
            block["presidio_blank_spacy"] = previous["presidio_blank_spacy"]  # keep the last comparison
        result[set_name] = block
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
