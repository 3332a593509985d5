"""Latency of one search at growing index sizes: exact vs HNSW, embedding excluded/included.

All three sample corpora (real chunks, real MiniLM vectors) are padded with synthetic
filler up to each size: filler vectors are normalised mixtures of two real chunk
vectors plus noise (so they cluster like real text, unlike uniform random vectors);
filler texts are runs of real sentences (so BM25 posting lists are realistically
long). 5% of the rows are restricted to a group and queries run as a caller outside
it, so the ACL filter works on every search. Queries: the 120 questions of bench/data.

Per size, p50/p99 of: FAISS alone, BM25 alone, the whole hybrid search (dense + BM25 +
fusion + ACL), and hybrid with the query embedding included; the share of questions
whose source document is in the top 5 (with the filler competing); for HNSW its
recall@10 of exact ids and its cosine mass relative to exact. The reported threshold
is the smallest size from which HNSW's hybrid p50 beats exact's at every larger size.
FAISS and torch run single-threaded (one query per request). The BM25 part is shared
by the exact and HNSW runs at one size (its build time is in the exact row).
Prints a table; writes bench/results/retrieval_latency.json.

    .venv/bin/python -m bench.retrieval_latency [--sizes 1000,10000,100000] [--queries 120]
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import time
from dataclasses import dataclass

import numpy as np

from bench.retrieval_corpus import DOMAINS, load_corpus, load_questions, write_result
from retrieval.embedding import MINILM_NAME, SentenceTransformerEmbedder, bundled_model_path, embed, normalize
from retrieval.index import DomainIndex, IndexConfig, _top_positive
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


@dataclass
class Measured:
    dense_ms: list[float]  # FAISS alone (ACL selector included)
    bm25_ms: list[float]  # BM25 scores + top candidates alone
    hybrid_ms: list[float]  # the whole DomainIndex.search
    full_ms: list[float]  # query embedding + DomainIndex.search
    dense_top: list[list[tuple[int, float]]]  # (row, cosine) top 10 per question
    source_recall_at_5: float  # the question's source document among the top 5 hybrid hits


def measure(
    index: DomainIndex,
    qvecs: np.ndarray,
    questions: list[str],
    sources: list[str],
    row_source: list[str],
    embedder: SentenceTransformerEmbedder,
) -> Measured:
    # Benchmark code reaches into the index's stages to time them one by one.
    row_filter = index.acl.filter(CALLER)
    depth = index.config.candidates
    runs = [(qvecs[i], questions[i]) for i in range(len(questions))]
    index.search(qvecs[0], questions[0], CALLER, 5)  # warm caches (the caller's ACL filter)
    query = [v.reshape(1, -1) for v in qvecs]
    dense_ms = timed(lambda i: index._dense_search(query[i], depth, row_filter), [(i,) for i in range(len(runs))])
    bm25_ms = timed(lambda q: _top_positive(index._bm25_scores(q, row_filter), depth), [(q,) for q in questions])
    hybrid_ms = timed(lambda v, q: index.search(v, q, CALLER, 5), runs)
    full_ms = timed(lambda q: index.search(embed(embedder, [q])[0], q, CALLER, 5), [(q,) for q in questions])
    dense_top = []
    for i in range(len(runs)):
        rows, scores = index._dense_search(query[i], 10, row_filter)
        dense_top.append(list(zip(rows.tolist(), scores.tolist(), strict=True)))
    found = []
    for (vector, question), source in zip(runs, sources, strict=True):
        hits = index.search(vector, question, CALLER, 5)
        found.append(any(h.chunk_id - 1 < len(row_source) and row_source[h.chunk_id - 1] == source for h in hits))
    return Measured(dense_ms, bm25_ms, hybrid_ms, full_ms, dense_top, float(np.mean(found)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2500,5000,7500,10000,20000,50000,100000")
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--hnsw-min", type=int, default=2500, help="smallest size to also build HNSW for")
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
    question_set = [q for d in DOMAINS for q in load_questions(d)][: args.queries]
    questions = [q.question for q in question_set]
    sources = [q.source for q in question_set]
    row_source = [c.source for c in corpus]
    qvecs = embed(embedder, questions)
    embed_ms = timed(lambda q: embed(embedder, [q]), [(q,) for q in questions])

    rng = np.random.default_rng(7)
    extra_vectors, extra_texts = filler(base, sentences, max(sizes) - len(corpus), rng)
    all_vectors = np.concatenate([base, extra_vectors])
    all_texts = [c.chunk.embed_text for c in corpus] + extra_texts
    restricted = rng.random(len(all_texts)) < 0.05

    rows: list[dict[str, object]] = []
    print(f"embedding one query: p50 {statistics.median(embed_ms):.2f} ms, p99 {pct(embed_ms, 99):.2f} ms")
    header = (
        f"{'rows':>7} {'kind':5} {'build s':>7} {'faiss p50':>9} {'bm25 p50':>8} {'hybrid p50':>10} {'p99':>6} "
        f"{'+embed p50':>10} {'p99':>6} {'src R@5':>7} {'ids R@10':>8} {'cos ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        entries = [IndexEntry(i + 1, all_texts[i], RESTRICTED if restricted[i] else frozenset()) for i in range(size)]
        vectors = all_vectors[:size]
        exact_top: list[list[tuple[int, float]]] = []
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
            m = measure(index, qvecs, questions, sources, row_source, embedder)
            recall = cos_ratio = None
            if kind == "flat":
                exact_top = m.dense_top
            elif exact_top:
                recall = float(
                    np.mean(
                        [
                            len({r for r, _ in a} & {r for r, _ in b}) / 10
                            for a, b in zip(exact_top, m.dense_top, strict=True)
                        ]
                    )
                )
                # Misses among near-tied neighbours barely matter: compare similarity mass too.
                cos_ratio = float(
                    np.mean(
                        [
                            sum(c for _, c in b) / sum(c for _, c in a)
                            for a, b in zip(exact_top, m.dense_top, strict=True)
                        ]
                    )
                )
            row = {
                "rows": size,
                "kind": kind,
                "build_s": round(build_s, 2),
                "faiss_p50_ms": round(statistics.median(m.dense_ms), 3),
                "faiss_p99_ms": round(pct(m.dense_ms, 99), 3),
                "bm25_p50_ms": round(statistics.median(m.bm25_ms), 3),
                "bm25_p99_ms": round(pct(m.bm25_ms, 99), 3),
                "hybrid_p50_ms": round(statistics.median(m.hybrid_ms), 3),
                "hybrid_p99_ms": round(pct(m.hybrid_ms, 99), 3),
                "with_embedding_p50_ms": round(statistics.median(m.full_ms), 3),
                "with_embedding_p99_ms": round(pct(m.full_ms, 99), 3),
                "source_recall_at_5": round(m.source_recall_at_5, 3),
                "hnsw_id_recall_at_10": None if recall is None else round(recall, 3),
                "hnsw_cosine_ratio_at_10": None if cos_ratio is None else round(cos_ratio, 4),
            }
            rows.append(row)
            print(
                f"{size:7d} {kind:5} {build_s:7.1f} {row['faiss_p50_ms']:9.3f} {row['bm25_p50_ms']:8.3f} "
                f"{row['hybrid_p50_ms']:10.3f} {row['hybrid_p99_ms']:6.2f} {row['with_embedding_p50_ms']:10.2f} "
                f"{row['with_embedding_p99_ms']:6.1f} {row['source_recall_at_5']:7.3f} "
                f"{'' if recall is None else f'{recall:8.3f}'} {'' if cos_ratio is None else f'{cos_ratio:9.4f}'}"
            )
        del flat, index

    # The threshold: the smallest measured size from which HNSW's hybrid p50 beats exact
    # search at that size and at every larger one (a single small-size win is noise).
    pairs = []
    for size in sizes:
        flat_row = next((r for r in rows if r["rows"] == size and r["kind"] == "flat"), None)
        hnsw_row = next((r for r in rows if r["rows"] == size and r["kind"] == "hnsw"), None)
        if flat_row and hnsw_row:
            pairs.append((size, hnsw_row["hybrid_p50_ms"] < flat_row["hybrid_p50_ms"]))  # type: ignore[operator]
    threshold = next((size for k, (size, _) in enumerate(pairs) if all(f for _, f in pairs[k:])), None)
    print(
        f"HNSW stays faster than exact from {threshold} rows "
        f"(IndexConfig.hnsw_threshold: {IndexConfig().hnsw_threshold})"
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
