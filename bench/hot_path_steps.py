"""Three steps taken off the full pipeline's hot path (issue 24, twelfth session), each
timed before and after on the same machine, one thread, in one run.

    .venv/bin/python -m bench.hot_path_steps

1. The kNN gate's product with its bank: the bank row-major (``vectors @ bank.T``, as
   before) against the bank stored transposed (``vectors @ bank_t``, now), for batches
   of 1-16 query vectors (the route batcher's batches under load): milliseconds per
   product-and-top-k (``TrainedScorer._nearest``'s work), and the largest difference
   between the two layouts' scores. The queries are bank rows with noise added,
   renormalised: like real queries, each has near neighbours in the bank.
2. A retrieved passage's snippet text without its secrets: ``scrub`` each time (before)
   against the remembered result (now), over the shipped sample documents' chunks.
3. The input safety check's score of a short request with its embedding given: the
   hashed n-grams with an empty word memo (each word hashed, as before) against a warm
   one (now).

Writes bench/results/hot_path_steps.json. Timings are reported, never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from backend.guard.output import scrub
from backend.knowledge.service import _scrubbed
from bench.router_bench import shipped_gate
from bench.router_common import machine, write_result
from router.encoder import Vectors
from router.features import HashedNgrams
from router.gate import TrainedScorer, _top_k_mean
from router.safety.model import SHIPPED, SafetyModel

BATCHES = (1, 2, 4, 8, 16)
QUESTION = "How do I rotate the API key for the billing service in our deployment?"
SAMPLES = Path(__file__).resolve().parents[1] / "retrieval" / "samples"


def _ms(fn: Callable[[], object], repeats: int = 200) -> float:
    for _ in range(5):
        fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return round((time.perf_counter() - started) / repeats * 1000, 4)


def bank_layout() -> dict[str, object]:
    gate = TrainedScorer.load(shipped_gate())
    if gate.manifest.architecture != "knn":
        raise SystemExit(f"{gate.version} is not a kNN gate")
    bank_t = gate._bank_t
    row_major = np.ascontiguousarray(bank_t.T)  # the layout before
    k = gate.manifest.knn_k

    def before(vectors: Vectors) -> tuple[Vectors, Vectors]:
        sims = vectors @ row_major.T
        per_expert = np.stack([_top_k_mean(sims[:, a:b], k) for a, b in gate._spans], axis=1)
        return per_expert, _top_k_mean(sims[:, : gate._in_domain_rows], k)

    rng = np.random.default_rng(0)
    rows = []
    for batch in BATCHES:
        picked = row_major[rng.integers(0, len(row_major), batch)]
        queries = (picked + 0.3 * rng.standard_normal(picked.shape)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        old, new = before(queries), gate._nearest(queries)

        def row_major_product(q: Vectors = queries) -> object:
            return before(q)

        def transposed_product(q: Vectors = queries) -> object:
            return gate._nearest(q)

        rows.append(
            {
                "batch": batch,
                "ms_row_major": _ms(row_major_product),
                "ms_transposed": _ms(transposed_product),
                "max_abs_diff": float(max(np.abs(old[0] - new[0]).max(), np.abs(old[1] - new[1]).max())),
                "same_top_expert": bool((old[0].argmax(axis=1) == new[0].argmax(axis=1)).all()),
            }
        )
        print(rows[-1])
    return {"gate": gate.version, "bank_rows": int(bank_t.shape[1]), "dim": int(bank_t.shape[0]), "rows": rows}


def snippet_scrub() -> dict[str, object]:
    """Per passage, ms: the sample chunks' texts (paragraphs of the shipped documents)."""
    texts = [
        part.strip()
        for path in sorted(SAMPLES.glob("**/*.md"))
        for part in path.read_text(encoding="utf-8").split("\n\n")
        if len(part.strip()) > 200
    ][:200]
    if not texts:
        raise SystemExit(f"no sample documents under {SAMPLES}")
    for text in texts:  # the memo warm, as after the first request that retrieves them
        _scrubbed(text)

    def each_time() -> object:
        return [scrub(t, "")[0] for t in texts]

    def remembered() -> object:
        return [_scrubbed(t) for t in texts]

    assert each_time() == remembered()
    per = len(texts)
    out: dict[str, object] = {
        "passages": per,
        "ms_scrub_each_time": round(_ms(each_time, 20) / per, 4),
        "ms_remembered": round(_ms(remembered, 20) / per, 4),
    }
    print(out)
    return out


def safety_ngrams() -> dict[str, object]:
    """The safety check's score of QUESTION, ms, with the n-gram word memo emptied before
    every call (as before) and warm (now)."""
    model = SafetyModel.load(SHIPPED)
    vector = np.random.default_rng(1).standard_normal(384).astype(np.float32)
    vector /= np.linalg.norm(vector)

    def encode(texts: list[str]) -> Vectors:
        raise AssertionError("a one-sentence request embeds nothing more")

    def cold() -> object:
        model._ngrams = HashedNgrams(model.manifest.lexical_buckets)
        return model.score(QUESTION, vector, encode)

    def warm() -> object:
        return model.score(QUESTION, vector, encode)

    out: dict[str, object] = {"ms_score_memo_empty": _ms(cold, 2000), "ms_score_memo_warm": _ms(warm, 2000)}
    print(out)
    return out


def main() -> None:
    with threadpool_limits(1):
        result: dict[str, object] = {
            "knn_bank_layout": bank_layout(),
            "snippet_scrub": snippet_scrub(),
            "safety_score_ngrams": safety_ngrams(),
            "machine": machine(),
        }
    print(f"wrote {write_result('hot_path_steps', result)}")


if __name__ == "__main__":
    main()
