"""Latency of one search at growing index sizes: exact vs HNSW, embedding excluded/included.

The support corpus (real chunks, real MiniLM vectors) is padded with synthetic filler
up to each size: filler vectors are normalised mixtures of two real chunk vectors plus
noise (so they cluster like real text, unlike uniform random vectors), filler texts are
random runs of real sentences (so BM25 posting lists are realistically long). 5% of
the rows are restricted to a group; queries run as a caller outside it, so the ACL
filter is exercised on every search. Queries are the 120 questions of bench/data.

Per size it reports p50/p99 of: dense only, the full hybrid search (dense + BM25 +
fusion + ACL), and hybrid with the query embedding included; for HNSW also its
recall@10 against exact search. It picks the exact/HNSW threshold as the smallest size
where HNSW's hybrid p50 beats exact's. FAISS and torch run single-threaded (one query per
request); the BM25 part is shared by the exact and HNSW runs at one size (its build
time is reported with the exact index). Prints a table; writes bench/results/retrieval_latency.json.

    .venv/bin/python -m bench.retrieval_latency [--sizes 1000,10000,100000] [--queries 120]
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import time

import numpy as np

from bench.retrieval_corpus import DOMAINS, load_corpus, load_questions, write_result
from retrieval.embedding import MINILM_NAME, SentenceTransformerEmbedder, bundled_model_path, embed, normalize
from retrieval.fusion import FusionConfig, FusionMethod
from retrieval.index import DomainIndex, IndexConfig
from retrieval.types import IndexEntry

RESTRICTED = frozenset({"restricted-group"})
CALLER = frozenset({"someone-else"})
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def filler(
    base_vectors: np.ndarray, sentences: list[str], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    i = rng.integers(0, len(base_vectors), n)
    j = rng.integers(0, len(base_vectors), n)
    w = rng.uniform(0.3, 0.7, (n, 1)).astype(np.float32)
    noise = rng.standard_normal((n, base_vectors.shape[1])).astype(np.float32) * 0.03
    vectors = normalize(w * base_vectors[i] + (1 - w) * base_vectors[j] + noise)
    picks = rng.integers(0, len(sentences), (n, 6))
    texts = [" ".join(sentences[k] for k in row) for row in picks]
    return vectors, texts


def timed(fn, runs: list) -> list[float]:  # type: ignore[no-untyped-def, type-arg]
    out = []
    for args in runs:
        started = time.perf_counter()
        fn(*args)
        out.append((time.perf_counter() - started) * 1000)
    return out


def measure(
    index: DomainIndex, qvecs: np.ndarray, questions: list[str], embedder: SentenceTransformerEmbedder
) -> tuple[list[float], list[float], list[float], list[set[int]]]:
    """(dense ms, hybrid ms, hybrid+embedding ms, dense top-10 ids) per question."""
    dense_only = FusionConfig(FusionMethod.DENSE)
    runs = [(qvecs[i], questions[i]) for i in range(len(questions))]
    index.search(qvecs[0], questions[0], CALLER, 5)  # warm caches (the caller's ACL mask)
    dense_ms = timed(lambda v, q: index.search(v, q, CALLER, 5, config=dense_only), runs)
    hybrid_ms = timed(lambda v, q: index.search(v, q, CALLER, 5), runs)
    full_ms = timed(lambda q: index.search(embed(embedder, [q])[0], q, CALLER, 5), [(q,) for q in questions])
    tops = [{h.chunk_id for h in index.search(v, "", CALLER, 10, config=dense_only)} for v, _ in runs]
    return dense_ms, hybrid_ms, full_ms, tops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000,20000,50000,100000")
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--hnsw-min", type=int, default=5000, help="smallest size to also build HNSW for")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import faiss
    import torch

    # One query per request: single-threaded FAISS and torch. (On a busy 2-core machine
    # torch's default two threads made one query embedding ~20x slower, not faster.)
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    embedder = SentenceTransformerEmbedder(bundled_model_path(), name=MINILM_NAME)
    corpus = [c for d in DOMAINS for c in load_corpus(d)]
    base = embed(embedder, [c.chunk.embed_text for c in corpus])
    sentences = [s for c in corpus for s in _SENTENCE.split(c.chunk.text) if len(s) > 20]
    questions = [q.question for d in DOMAINS for q in load_questions(d)][: args.queries]
    qvecs = embed(embedder, questions)
    embed_ms = timed(lambda q: embed(embedder, [q]), [(q,) for q in questions])

    rng = np.random.default_rng(7)
    extra_vectors, extra_texts = filler(base, sentences, max(sizes) - len(corpus), rng)
    all_vectors = np.concatenate([base, extra_vectors])
    all_texts = [c.chunk.embed_text for c in corpus] + extra_texts
    restricted = rng.random(len(all_texts)) < 0.05

    rows: list[dict[str, object]] = []
    print(f"embedding one query: p50 {statistics.median(embed_ms):.2f} ms, p99 {pct(embed_ms, 99):.2f} ms")
    header = f"{'rows':>7} {'kind':5} {'build s':>8} {'dense p50':>9} {'p99':>6} {'hybrid p50':>10} {'p99':>6} {'+embed p50':>10} {'p99':>6} {'recall@10':>9}"
    print(header)
    print("-" * len(header))
    for size in sizes:
        entries = [IndexEntry(i + 1, all_texts[i], RESTRICTED if restricted[i] else frozenset()) for i in range(size)]
        vectors = all_vectors[:size]
        exact_top: list[set[int]] = []
        flat: DomainIndex | None = None
        for kind in ("flat", "hnsw"):
            if kind == "hnsw" and size < args.hnsw_min:
                continue
            config = IndexConfig(hnsw_threshold=1 if kind == "hnsw" else size + 1)
            started = time.perf_counter()
            if flat is None:
                index = flat = DomainIndex.build(entries, vectors, config)
            else:
                # Same BM25 and ACL as the exact index (building BM25 again would only
                # cost time); only the dense part differs.
                faiss.omp_set_num_threads(2)
                dense = faiss.IndexHNSWFlat(vectors.shape[1], config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
                dense.hnsw.efConstruction = config.hnsw_ef_construction
                dense.add(vectors)
                dense.hnsw.efSearch = config.hnsw_ef_search
                faiss.omp_set_num_threads(1)
                index = DomainIndex(
                    chunk_ids=flat.chunk_ids,
                    dense=dense,
                    bm25=flat._bm25,
                    acl=flat.acl,
                    kind="hnsw",
                    dim=flat.dim,
                    config=config,
                )
            build_s = time.perf_counter() - started
            dense_ms, hybrid_ms, full_ms, tops = measure(index, qvecs, questions, embedder)
            recall = None
            if kind == "flat":
                exact_top = tops
            elif exact_top:
                recall = float(np.mean([len(a & b) / 10 for a, b in zip(exact_top, tops, strict=True)]))
            row = {
                "rows": size,
                "kind": kind,
                "build_s": round(build_s, 2),
                "dense_p50_ms": round(statistics.median(dense_ms), 3),
                "dense_p99_ms": round(pct(dense_ms, 99), 3),
                "hybrid_p50_ms": round(statistics.median(hybrid_ms), 3),
                "hybrid_p99_ms": round(pct(hybrid_ms, 99), 3),
                "with_embedding_p50_ms": round(statistics.median(full_ms), 3),
                "with_embedding_p99_ms": round(pct(full_ms, 99), 3),
                "hnsw_recall_at_10": recall,
            }
            rows.append(row)
            print(
                f"{size:7d} {kind:5} {build_s:8.2f} {row['dense_p50_ms']:9.3f} {row['dense_p99_ms']:6.2f} "
                f"{row['hybrid_p50_ms']:10.3f} {row['hybrid_p99_ms']:6.2f} {row['with_embedding_p50_ms']:10.3f} "
                f"{row['with_embedding_p99_ms']:6.2f} {'' if recall is None else f'{recall:9.3f}'}"
            )
        del flat, index

    threshold = None
    for size in sizes:
        flat = next((r for r in rows if r["rows"] == size and r["kind"] == "flat"), None)
        hnsw = next((r for r in rows if r["rows"] == size and r["kind"] == "hnsw"), None)
        if flat and hnsw and hnsw["hybrid_p50_ms"] < flat["hybrid_p50_ms"]:  # type: ignore[operator]
            threshold = size
            break
    print(
        f"HNSW is faster than exact from {threshold} rows (IndexConfig.hnsw_threshold: {IndexConfig().hnsw_threshold})"
    )
    path = write_result(
        "retrieval_latency",
        {
            "machine": {"cpu_count": __import__("os").cpu_count(), "platform": platform.platform()},
            "faiss_threads": 1,
            "torch_threads": 1,
            "load_average_at_end": list(__import__("os").getloadavg()),
            "queries": len(questions),
            "restricted_fraction": 0.05,
            "embedding_ms": {"p50": round(statistics.median(embed_ms), 3), "p99": round(pct(embed_ms, 99), 3)},
            "config": {
                "hnsw_m": IndexConfig().hnsw_m,
                "hnsw_ef_construction": IndexConfig().hnsw_ef_construction,
                "hnsw_ef_search": IndexConfig().hnsw_ef_search,
                "candidates": IndexConfig().candidates,
            },
            "rows": rows,
            "hnsw_faster_from_rows": threshold,
            "configured_threshold": IndexConfig().hnsw_threshold,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
