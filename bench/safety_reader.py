"""The safety reader's band and threshold, chosen on validation rows, and what it adds.

    .venv/bin/python -m bench.safety_reader [--public DIR] [--write]

Scores every set with the shipped safety model as the server does (SafetyModel.score,
pieces and patterns included) and with the reader (router/safety/reader.py: the whole
text, one tuned-encoder pass), then:

1. calibrates the reader's temperatures on the safety model's validation rows (rows
   neither model fitted: router.safety.train holds them out for the threshold);
2. chooses the band (the safety model's top score from which the reader is asked), the
   model's weight in the blend (``reader.blend``: the reader's probability with the
   model's top score weighed in) and the threshold on the blend, on those rows: for each
   band and weight the lowest threshold that adds at most ADDED_FPR false positives to
   the safety model's alone (on the validation benign rows, mixed as the held-out split
   mixes hard benign rows and traffic); then the most recall, the higher band on a tie
   (fewer requests pay for a second pass), then the lower weight. ``--band`` (and
   ``--weight``) ships another pair (its threshold still chosen on validation), chosen
   on the public sets and the cost: the report lists every pair's figures on them;
3. reports, on the held-out split and the public sets (``--public``, as
   bench/safety_eval.py reads them), the shipped check alone and with the reader:
   recall, false positives, the padded drop, and how many requests the reader reads.

``--write`` stores the temperatures, band, weight and threshold in the reader's manifest.
Scores are cached in ~/.cache/expertgate (by text and scorer version). Results go to
bench/results/safety_reader.json; docs/safety.md has the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from backend.gate.wiring import bundled_encoder
from backend.settings import Settings
from router.encoder import SentenceTransformerEncoder, bundled_minilm_path
from router.safety.data import BENIGN, SafetyExample, load_split
from router.safety.model import CATEGORIES, SHIPPED, SafetyModel, sigmoid
from router.safety.reader import MANIFEST, SHIPPED_READER, ReaderConfig, SafetyReader, blend, is_validation
from router.safety.train import ENCODER, VectorCache, _temperature, padded

RESULTS = Path(__file__).resolve().parent / "results" / "safety_reader.json"
CACHE = Path.home() / ".cache" / "expertgate"
# The reader may add this many false positives (a fraction of the validation benign
# rows, mixed as the held-out split mixes them) to the safety model's: its threshold
# targets 0.5% there, and the budget for the whole check is 1%.
ADDED_FPR = 0.002
BANDS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)  # the model's weight in the blend (reader.blend)
PADDINGS = ("padded_seed5", "padded_seed7", "padded_public_seed9")
PUBLIC_VIEW = ("in_the_wild_jailbreaks", "public_benign_requests", "bipia_email_injected", "bipia_email_clean")


class _Scores:
    """Per-text scores of one scorer, cached on disk by text."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._known: dict[str, list[float]] = json.loads(path.read_text()) if path.exists() else {}

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def missing(self, texts: Sequence[str]) -> list[str]:
        return list(dict.fromkeys(t for t in texts if self.key(t) not in self._known))

    def put(self, text: str, values: Sequence[float]) -> None:
        self._known[self.key(text)] = [float(v) for v in values]

    def get(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self._known[self.key(t)] for t in texts], dtype=np.float32)

    def save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_text(json.dumps(self._known))


def _sets(public: Path | None) -> dict[str, list[SafetyExample]]:
    split = load_split()
    # The pending rows (data/PLAN.md), split by the same hash: the safety model trained
    # on none, so their validation rows join the validation set (a reader trained with
    # --pending leaves them out too) and their held-out rows are one more unseen set.
    wider = load_split(pending=True)
    config = ReaderConfig()
    val = [r for r in wider.train if not r.derived and is_validation(r.text, config.val_share)]
    # The held-out rows bench/safety_eval.py reads (one hard benign row among them has a
    # variant in the pending rows: a reader trained with --pending has seen that one).
    attacks = [r for r in split.test if r.label != BENIGN]
    hard = [r for r in split.test if r.label == BENIGN]
    shipped_test = {r.text for r in split.test}
    pending_test = [r for r in wider.test if r.text not in shipped_test]
    out = {
        "val": val,
        "attacks": attacks,
        "hard_benign": hard,
        "router_test": split.router_test,
        "pending_attacks": [r for r in pending_test if r.label != BENIGN],
        "pending_benign": [r for r in pending_test if r.label == BENIGN],
        "padded_seed5": padded(attacks, hard + split.router_test, seed=5),
        "padded_seed7": padded(attacks, hard + split.router_test, seed=7),
    }
    if public is not None:
        for path in sorted(public.glob("*.jsonl")):
            rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
            random.Random(3).shuffle(rows)
            out[path.stem] = [
                SafetyExample(r["text"], "injection" if r["label"] == "attack" else BENIGN) for r in rows[:2000]
            ]
        if (public / "public_benign_requests.jsonl").exists():
            # padded as bench/safety_eval.py pads (the file's order), so the figures agree
            requests = [
                SafetyExample(json.loads(line)["text"], BENIGN)
                for line in (public / "public_benign_requests.jsonl").open(encoding="utf-8")
                if line.strip()
            ]
            out["padded_public_seed9"] = padded(attacks, requests, seed=9)
    return out


def _cheap(model: SafetyModel, cache: VectorCache, store: _Scores, texts: Sequence[str]) -> np.ndarray:
    todo = store.missing(texts)
    for start in range(0, len(todo), 256):
        chunk = todo[start : start + 256]
        for text, vector in zip(chunk, cache.encode(chunk), strict=True):
            store.put(text, list(model.score(text, vector, cache.encode).scores.values()))
        store.save()
        cache.save()
    return store.get(texts)


def _read(reader: SafetyReader, store: _Scores, texts: Sequence[str]) -> np.ndarray:
    todo = store.missing(texts)
    for start in range(0, len(todo), 256):
        chunk = todo[start : start + 256]
        for text, logits in zip(chunk, reader.logits(chunk), strict=True):
            store.put(text, logits)
        store.save()
    return store.get(texts)


def _flags(
    cheap: np.ndarray, reader_p: np.ndarray | None, threshold: float, band: float, rt: float, weight: float = 0.0
) -> np.ndarray:
    """What the check flags, as InputSafety does: the model at its threshold, or in the
    band the reader's blend (reader.blend, the highest category's) at ``rt``."""
    top = cheap.max(1)
    flagged = top >= threshold
    if reader_p is None:
        return flagged
    asked = (top >= band) & ~flagged
    return flagged | (asked & (blend(reader_p.max(1), top, weight) >= rt))


def _conversations(
    sets: dict[str, list[SafetyExample]],
    cheap: dict[str, np.ndarray],
    probs: dict[str, np.ndarray],
    score: Callable[[Sequence[str]], np.ndarray],
    read: Callable[[Sequence[str]], np.ndarray],
    flag: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> dict[str, object]:
    """The held-out conversations read as the server reads them: the sets above score a
    conversation's joined turns as one text; the server (InputSafety.assess and
    read_again) takes, per category, the higher of the last message's reading and the
    joined turns', for the model and the reader alike. Held-out recall and false
    positives with those rows so read."""
    out: dict[str, object] = {}
    for name in ("attacks", "hard_benign"):
        idx = [i for i, r in enumerate(sets[name]) if r.turns]
        last = [sets[name][i].turns[-1] for i in idx]
        served_cheap = np.maximum(cheap[name][idx], score(last))
        served_probs = np.maximum(probs[name][idx], read(last))
        as_bench = flag(cheap[name], probs[name])
        as_served = as_bench.copy()
        as_served[idx] = flag(served_cheap, served_probs)
        out[name] = {
            "conversations": len(idx),
            "flagged_as_the_sets_read_them": int(as_bench[idx].sum()),
            "flagged_as_served": int(as_served[idx].sum()),
            "rate_with_conversations_as_served": round(float(as_served.mean()), 4),
        }
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--public", type=Path, default=None)
    parser.add_argument("--reader", type=Path, default=SHIPPED_READER)
    parser.add_argument(
        "--write", action="store_true", help="store the temperatures and the chosen band, weight and threshold"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--band", type=float, default=None, help="ship this band (one of BANDS) instead of validation's"
    )
    parser.add_argument(
        "--weight", type=float, default=None, help="with --band: ship this model weight (one of WEIGHTS)"
    )
    parser.add_argument("--runtime", choices=("served", "torch"), default="served")
    parser.add_argument("--cheap-only", action="store_true", help="only score (and cache) the safety model's scores")
    args = parser.parse_args(argv)
    if args.weight is not None and args.band is None:
        parser.error("--weight goes with --band")
    import torch

    torch.set_num_threads(args.threads)
    model = SafetyModel.load(SHIPPED)
    base = SentenceTransformerEncoder(bundled_minilm_path(), name=ENCODER)
    cache = VectorCache(base, CACHE / "safety-vectors.npz")
    cheap_store = _Scores(CACHE / f"scores-{model.scorer}.json")
    sets = _sets(args.public)
    cheap = {name: _cheap(model, cache, cheap_store, [r.text for r in rows]) for name, rows in sets.items()}
    if args.cheap_only:
        return
    # The reader as the server runs it: on the settings' encoder runtime (ONNX Runtime
    # int8 for tuned layers by default), or torch float32 with --runtime torch.
    runner = bundled_encoder(Settings(), serving=False) if args.runtime == "served" else base
    reader = SafetyReader.load(args.reader, runner)
    runtime = Settings().router_encoder_runtime if args.runtime == "served" else "torch"
    stamp = f"{reader.version}-{reader.manifest.created_at.replace(':', '')}-{runtime}"
    reader_store = _Scores(CACHE / f"scores-{stamp}.json")
    logits = {name: _read(reader, reader_store, [r.text for r in rows]) for name, rows in sets.items()}

    val = sets["val"]
    y_val = np.array([[r.label == c for c in CATEGORIES] for r in val], dtype=np.float32)
    temps = {c: round(_temperature(logits["val"][:, i], y_val[:, i]), 3) for i, c in enumerate(CATEGORIES)}
    t = np.array([temps[c] for c in CATEGORIES], dtype=np.float32)
    probs = {name: sigmoid(z / t) for name, z in logits.items()}  # as SafetyReader.probabilities
    threshold = model.manifest.threshold
    benign_val = y_val.sum(1) == 0
    hard_val = np.array([r.cell != "router" for r in val])
    # False positives on the validation benign rows, mixed as the held-out split mixes
    # hard benign rows and ordinary traffic (the budget is on that mixture).
    share = len(sets["hard_benign"]) / (len(sets["hard_benign"]) + len(sets["router_test"]))

    def mixed_fpr(flags: np.ndarray) -> float:
        return float(share * flags[benign_val & hard_val].mean() + (1 - share) * flags[benign_val & ~hard_val].mean())

    alone = mixed_fpr(cheap["val"].max(1) >= threshold)
    # (band, model weight) -> (reader threshold, val recall): for each, the lowest
    # threshold on the blend within the budget (false positives fall as it rises).
    chosen: dict[tuple[float, float], tuple[float, float]] = {}
    for band in BANDS:
        for weight in WEIGHTS:
            cuts = np.unique(np.round(blend(probs["val"].max(1), cheap["val"].max(1), weight), 4))
            lo, hi = 0, len(cuts) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if (
                    mixed_fpr(_flags(cheap["val"], probs["val"], threshold, band, float(cuts[mid]), weight)) - alone
                    <= ADDED_FPR
                ):
                    hi = mid
                else:
                    lo = mid + 1
            flags = _flags(cheap["val"], probs["val"], threshold, band, float(cuts[lo]), weight)
            if mixed_fpr(flags) - alone <= ADDED_FPR:  # no threshold within the budget: not a candidate
                chosen[(band, weight)] = (float(cuts[lo]), float(flags[~benign_val].mean()))
    # Validation's choice: the most recall; on a tie the higher band (fewer requests
    # pay for a second pass), then the lower weight (the reader's own word).
    val_pick = max(chosen, key=lambda k: (round(chosen[k][1], 9), k[0], -k[1]))
    band, weight = val_pick
    if args.band is not None:
        band = args.band
        if args.weight is not None:
            weight = args.weight
        if (band, weight) not in chosen:
            parser.error(f"--band must be one of {BANDS} and --weight one of {WEIGHTS}")
    rt = chosen[(band, weight)][0]

    def flags_of(
        name: str, with_reader: bool, band: float = band, rt: float = rt, weight: float = weight
    ) -> np.ndarray:
        return _flags(cheap[name], probs[name] if with_reader else None, threshold, band, rt, weight)

    def rate(name: str, with_reader: bool, band: float = band, rt: float = rt, weight: float = weight) -> float:
        return round(float(flags_of(name, with_reader, band, rt, weight).mean()), 4)

    def asked(name: str, band: float = band) -> float:
        top = cheap[name].max(1)
        return round(float(((top >= band) & (top < threshold)).mean()), 4)

    def fpr_all(with_reader: bool, band: float = band, rt: float = rt, weight: float = weight) -> float:
        both = [flags_of(n, with_reader, band, rt, weight) for n in ("hard_benign", "router_test")]
        return round(float(np.concatenate(both).mean()), 4)

    # Every (band, weight) with its validation threshold, on the held-out and public
    # sets: where the pair is chosen on public data (--band), this is what it was chosen from.
    candidates = [
        {
            "band": b,
            "model_weight": w,
            "reader_threshold": r,
            "val_recall": round(v, 4),
            "held_out_recall": rate("attacks", True, b, r, w),
            "fpr_benign_all": fpr_all(True, b, r, w),
            "pending_held_out_recall": rate("pending_attacks", True, b, r, w),
            "pending_held_out_benign_flagged": rate("pending_benign", True, b, r, w),
            **{f"{name}_flagged": rate(name, True, b, r, w) for name in PUBLIC_VIEW if name in sets},
            **{f"{name}_recall": rate(name, True, b, r, w) for name in PADDINGS if name in sets},
            "router_test_read": asked("router_test", b),
            **({"public_benign_read": asked("public_benign_requests", b)} if "public_benign_requests" in sets else {}),
        }
        for (b, w), (r, v) in chosen.items()
    ]
    report: dict[str, object] = {
        "safety_model": model.scorer,
        "reader": reader.version,
        "reader_runtime": type(reader.encoder).__name__ if args.runtime == "served" else "torch float32",
        "threshold": threshold,
        "chosen_on": "validation" if args.band is None else "public sets (--band, --weight)",
        "validation_choice": {"band": val_pick[0], "model_weight": val_pick[1]},
        "shipped": {
            "band": band,
            "model_weight": weight,
            "reader_threshold": rt,
            "temperatures": temps,
            "val_rows": len(val),
            "val_benign": int(benign_val.sum()),
            "val_fpr_mixed_alone": round(alone, 4),
            "val_fpr_mixed_with_reader": round(
                mixed_fpr(_flags(cheap["val"], probs["val"], threshold, band, rt, weight)), 4
            ),
            "val_recall_alone": round(float(_flags(cheap["val"], None, threshold, band, rt)[~benign_val].mean()), 4),
            "val_recall_with_reader": round(chosen[(band, weight)][1], 4),
        },
        "candidates": candidates,
        "sets": {
            name: {
                "rows": len(rows),
                "flagged_alone": rate(name, False),
                "flagged_with_reader": rate(name, True),
                "reader_asked": asked(name),
            }
            for name, rows in sets.items()
        },
    }
    report["fpr_benign_all"] = {"alone": fpr_all(False), "with_reader": fpr_all(True)}
    report["conversations_as_served"] = _conversations(
        sets, cheap, probs, lambda texts: _cheap(model, cache, cheap_store, texts),
        lambda texts: sigmoid(_read(reader, reader_store, texts) / t),
        lambda c, p: _flags(c, p, threshold, band, rt, weight),
    )  # fmt: skip
    by_cell: dict[str, list[bool]] = {}
    for row, flag in zip(sets["attacks"], flags_of("attacks", True), strict=True):
        by_cell.setdefault(row.cell, []).append(bool(flag))
    report["recall_by_cell_with_reader"] = {k: round(sum(v) / len(v), 4) for k, v in sorted(by_cell.items())}
    # The reader's own time for one short request (the served runtime, one text).
    texts = [r.text for r in sets["router_test"][:200]]
    times = []
    for text in texts:
        started = time.perf_counter()
        reader.probabilities([text])
        times.append((time.perf_counter() - started) * 1000)
    report["reader_ms_p50"] = round(statistics.median(times), 2)
    # The reader alone, in place of the model: held-out recall where it flags 1% of the
    # held-out benign rows (the budget), beside the model alone at its threshold.
    benign_top = np.sort(np.concatenate([probs["hard_benign"], probs["router_test"]]).max(1))[::-1]
    at_one = float(benign_top[int(0.01 * len(benign_top))])
    report["reader_alone_recall_at_1pct_fpr"] = round(float((probs["attacks"].max(1) > at_one).mean()), 4)
    report["model_alone_recall"] = round(float((cheap["attacks"].max(1) >= threshold).mean()), 4)
    cheap_store.save()
    reader_store.save()
    cache.save()
    if args.write:
        manifest = replace(
            reader.manifest, temperatures=temps, band=band, threshold=rt, model_weight=weight,
            safety_model=model.version,
            metrics={**reader.manifest.metrics, "val_recall_with_reader": round(chosen[(band, weight)][1], 4)},
        )  # fmt: skip
        (args.reader / MANIFEST).write_text(manifest.to_json() + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
