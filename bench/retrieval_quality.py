"""Retrieval quality on the sample corpora: recall@5 and MRR@10, dense vs BM25 vs hybrid.

For each question in bench/data/retrieval_questions_{support,legal,code}.jsonl the
question's domain index is searched (as a caller in the domain's restricted group, so
every document is eligible). A question counts as found at rank r when the r-th chunk
comes from the question's ``source`` document (doc-level). The stricter answer-level
figures count a hit only when that chunk also contains the expected ``answer`` text.
Prints a table; writes bench/results/retrieval_quality.json.

    .venv/bin/python -m bench.retrieval_quality [--max-chars 900 --min-chars 250]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.retrieval_corpus import (
    DOMAINS,
    RESTRICTED_GROUP,
    CorpusChunk,
    Question,
    load_corpus,
    load_questions,
    normalise,
    write_result,
)
from retrieval.chunking import ChunkConfig
from retrieval.embedding import MINILM_NAME, SentenceTransformerEmbedder, bundled_model_path, embed
from retrieval.fusion import FusionConfig, FusionMethod
from retrieval.index import DomainIndex, IndexConfig

K_RECALL = 5
K_MRR = 10


def methods() -> dict[str, FusionConfig]:
    out = {
        "dense": FusionConfig(FusionMethod.DENSE),
        "bm25": FusionConfig(FusionMethod.BM25),
        "hybrid-rrf (k=60)": FusionConfig(FusionMethod.RRF, rrf_k=60),
        "hybrid-rrf (k=10)": FusionConfig(FusionMethod.RRF, rrf_k=10),
    }
    for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        out[f"hybrid-weighted (w={w})"] = FusionConfig(FusionMethod.WEIGHTED, dense_weight=w)
    return out


def evaluate(
    index: DomainIndex,
    chunks: dict[int, CorpusChunk],
    questions: list[Question],
    vectors: np.ndarray,
    fusion: FusionConfig,
    groups: frozenset[str],
) -> dict[str, float]:
    doc_rr, ans_rr, doc_hit, ans_hit = [], [], [], []
    for q, vec in zip(questions, vectors, strict=True):
        hits = index.search(vec, q.question, groups, K_MRR, config=fusion)
        answer = normalise(q.answer)
        doc_rank = ans_rank = 0
        for rank, hit in enumerate(hits, start=1):
            c = chunks[hit.chunk_id]
            if c.source == q.source:
                doc_rank = doc_rank or rank
                if answer in normalise(c.chunk.text) or answer in normalise(c.chunk.embed_text):
                    ans_rank = ans_rank or rank
        doc_hit.append(0 < doc_rank <= K_RECALL)
        ans_hit.append(0 < ans_rank <= K_RECALL)
        doc_rr.append(1.0 / doc_rank if doc_rank else 0.0)
        ans_rr.append(1.0 / ans_rank if ans_rank else 0.0)
    return {
        "recall@5": float(np.mean(doc_hit)),
        "mrr@10": float(np.mean(doc_rr)),
        "answer_recall@5": float(np.mean(ans_hit)),
        "answer_mrr@10": float(np.mean(ans_rr)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-chars", type=int, default=ChunkConfig().max_chars)
    parser.add_argument("--min-chars", type=int, default=ChunkConfig().min_chars)
    args = parser.parse_args()
    chunk_config = ChunkConfig(max_chars=args.max_chars, min_chars=args.min_chars)

    embedder = SentenceTransformerEmbedder(bundled_model_path(), name=MINILM_NAME)
    table: dict[str, dict[str, dict[str, float]]] = {}
    answer_coverage: dict[str, float] = {}
    sizes: dict[str, int] = {}
    started = time.perf_counter()
    for domain in DOMAINS:
        corpus = load_corpus(domain, chunk_config)
        sizes[domain] = len(corpus)
        by_id = {c.chunk_id: c for c in corpus}
        questions = load_questions(domain)
        # How many answers survive chunking intact (an upper bound for answer recall).
        answer_coverage[domain] = float(
            np.mean(
                [
                    any(normalise(q.answer) in normalise(c.chunk.embed_text) for c in corpus if c.source == q.source)
                    for q in questions
                ]
            )
        )
        vectors = embed(embedder, [c.chunk.embed_text for c in corpus])
        index = DomainIndex.build([c.entry() for c in corpus], vectors, IndexConfig())
        qvecs = embed(embedder, [q.question for q in questions])
        groups = frozenset({RESTRICTED_GROUP[domain]})
        for name, fusion in methods().items():
            table.setdefault(name, {})[domain] = evaluate(index, by_id, questions, qvecs, fusion, groups)

    n_questions = {d: len(load_questions(d)) for d in DOMAINS}
    total = sum(n_questions.values())
    print(f"chunks: {sizes}  questions: {n_questions}  chunking: max {args.max_chars} / min {args.min_chars} chars")
    print(f"answers intact in one chunk: { {d: round(v, 3) for d, v in answer_coverage.items()} }")
    header = f"{'method':26} {'recall@5':>9} {'MRR@10':>7} {'ans-R@5':>8} {'ans-MRR':>8}   per domain recall@5 (support/legal/code)"
    print(header)
    print("-" * len(header))
    summary: dict[str, dict[str, float]] = {}
    for name, per_domain in table.items():
        overall = {
            metric: sum(per_domain[d][metric] * n_questions[d] for d in DOMAINS) / total
            for metric in ("recall@5", "mrr@10", "answer_recall@5", "answer_mrr@10")
        }
        summary[name] = overall
        per = " / ".join(f"{per_domain[d]['recall@5']:.3f}" for d in DOMAINS)
        print(
            f"{name:26} {overall['recall@5']:9.3f} {overall['mrr@10']:7.3f} "
            f"{overall['answer_recall@5']:8.3f} {overall['answer_mrr@10']:8.3f}   {per}"
        )
    path = write_result(
        "retrieval_quality",
        {
            "chunking": {"max_chars": args.max_chars, "min_chars": args.min_chars},
            "chunks": sizes,
            "questions": n_questions,
            "answer_coverage": answer_coverage,
            "default_fusion": str(IndexConfig().fusion.method),
            "default_dense_weight": IndexConfig().fusion.dense_weight,
            "overall": summary,
            "per_domain": table,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
