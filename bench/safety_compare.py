"""Safety models side by side, at matched false-positive rates (choosing the next model).

    python -m bench.safety_compare --model DIR_A --model DIR_B [--data DIR] [--public DIR]

Every model scores the same rows through ``SafetyModel.score`` (as the server does). Its
thresholds are set where it flags 1%, 2% and 3% of the held-out benign rows (our hard
benign rows and the router's held-out traffic), so two models are compared at the same
cost in false positives rather than each at its own calibrated threshold. At each:

- recall on the held-out attacks, and on them with an ordinary request before or after;
- on each public set of ``--public`` (``bench/safety_public.py``; evaluation only):
  recall on its attacks, false positives on its benign rows.

``--data``: the folder of plan files the split is made from (default: the shipped one;
a folder holding ``pending/`` rows too gives the larger held-out split, on which no
model has trained). Writes ``--out`` (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router.encoder import SentenceTransformerEncoder, bundled_minilm_path
from router.safety.data import BENIGN, DATA_DIR, load_split
from router.safety.model import SafetyModel
from router.safety.train import ENCODER, VectorCache, padded

TARGETS = (0.01, 0.02, 0.03)


def top_scores(model: SafetyModel, texts: Sequence[str], cache: VectorCache) -> np.ndarray:
    vectors = cache.encode(list(texts))
    return np.array([model.score(t, v, cache.encode).top[1] for t, v in zip(texts, vectors, strict=True)])


def threshold_at(benign: np.ndarray, rate: float) -> float:
    """The lowest threshold that flags at most ``rate`` of ``benign`` (flag: score >= it)."""
    ranked = np.sort(benign)[::-1]
    allowed = int(np.floor(rate * len(ranked)))
    return float(np.nextafter(ranked[allowed], np.inf)) if allowed < len(ranked) else 0.0


def _public_rows(folder: Path | None) -> dict[str, list[dict[str, str]]]:
    if folder is None:
        return {}
    return {
        p.stem: [json.loads(line) for line in p.open(encoding="utf-8") if line.strip()]
        for p in sorted(folder.glob("*.jsonl"))
    }


def compare(models: Sequence[Path], data: Path, public: Path | None, cache: VectorCache) -> dict[str, Any]:
    split = load_split(data)
    attacks = [r for r in split.test if r.label != BENIGN]
    benign = [r for r in split.test if r.label == BENIGN] + split.router_test
    pads = padded(attacks, benign, seed=5)
    sets = _public_rows(public)
    out: dict[str, Any] = {"data": str(data), "attacks": len(attacks), "benign": len(benign), "models": {}}
    for directory in models:
        model = SafetyModel.load(directory)
        b = top_scores(model, [r.text for r in benign], cache)
        a = top_scores(model, [r.text for r in attacks], cache)
        p = top_scores(model, [r.text for r in pads], cache)
        pub = {name: (top_scores(model, [r["text"] for r in rows], cache), rows) for name, rows in sets.items()}
        row: dict[str, Any] = {}
        for rate in TARGETS:
            t = threshold_at(b, rate)
            cell: dict[str, Any] = {
                "threshold": round(t, 4),
                "benign_flagged": round(float((b >= t).mean()), 4),
                "recall": round(float((a >= t).mean()), 4),
                "padded_recall": round(float((p >= t).mean()), 4),
            }
            for name, (scores, rows) in pub.items():
                labels = np.array([r["label"] == "attack" for r in rows])
                if labels.any():
                    cell[f"{name}_recall"] = round(float((scores[labels] >= t).mean()), 4)
                if (~labels).any():
                    cell[f"{name}_fpr"] = round(float((scores[~labels] >= t).mean()), 4)
            row[f"fpr_{rate}"] = cell
        out["models"][f"{model.version} ({directory})"] = row
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--public", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("safety_compare.json"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "expertgate" / "safety-vectors.npz")
    args = parser.parse_args(argv)
    cache = VectorCache(SentenceTransformerEncoder(bundled_minilm_path(), name=ENCODER), args.cache)
    result = compare(args.model, args.data, args.public, cache)
    cache.save()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in result["models"].items():
        print(name)
        for rate, cell in row.items():
            print(f"  {rate}: " + "  ".join(f"{k} {v}" for k, v in cell.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
