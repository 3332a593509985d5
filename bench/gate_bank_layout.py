"""The kNN gate's product with its bank: the bank row-major (``vectors @ bank.T``, before
the twelfth session) against the bank stored transposed (``vectors @ bank_t``, now).

    .venv/bin/python -m bench.gate_bank_layout

One BLAS thread, as a server process runs it. For batches of 1-16 query vectors (the
route batcher's batches under load): milliseconds per product-and-top-k
(``TrainedScorer._nearest``'s work) in each layout, and the largest difference between
the two layouts' scores. The queries are bank rows with noise added, renormalised: like
real queries, each has near neighbours in the bank. Writes
bench/results/gate_bank_layout.json. Timings are reported, never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from bench.router_bench import shipped_gate
from bench.router_common import machine, write_result
from router.encoder import Vectors
from router.gate import TrainedScorer, _top_k_mean

BATCHES = (1, 2, 4, 8, 16)


def _ms(fn: Callable[[], object], repeats: int = 200) -> float:
    for _ in range(5):
        fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return round((time.perf_counter() - started) / repeats * 1000, 3)


def main() -> None:
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
    with threadpool_limits(1):
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
    path = write_result(
        "gate_bank_layout",
        {
            "gate": gate.version,
            "bank_rows": int(bank_t.shape[1]),
            "dim": int(bank_t.shape[0]),
            "rows": rows,
            "machine": machine(),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
