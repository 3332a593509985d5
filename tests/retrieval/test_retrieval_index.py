"""Tokenizer, fusion, ACL and the domain index (exact and HNSW), on synthetic vectors."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.acl import AclTable, visible
from retrieval.fusion import Candidates, FusionConfig, FusionMethod, fuse
from retrieval.index import DomainIndex, IndexConfig
from retrieval.snippets import snippet
from retrieval.tokenize import stem, tokenize
from retrieval.types import IndexEntry

LEGAL = frozenset({"legal-team"})
OTHER = frozenset({"support-leads"})


def unit_rows(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_tokenizer_folds_inflections_and_keeps_identifiers() -> None:
    assert tokenize("The refunds were refunded") == ["refund", "refund"]
    assert tokenize("router-svc HL-2025-0001") == [
        "router", "svc", "router-svc", "hl", "2025", "0001", "hl-2025-0001",
    ]  # fmt: skip
    assert [stem(w) for w in ("policies", "boxes", "invoices", "stopped", "status")] == [
        "policy", "box", "invoice", "stop", "status",
    ]  # fmt: skip


def test_rrf_and_weighted_fusion() -> None:
    c = Candidates(
        rows=np.array([10, 11, 12], dtype=np.int64),
        dense=np.array([0.9, 0.5, 0.2], dtype=np.float32),
        bm25=np.array([0.0, 4.0, 8.0], dtype=np.float32),
        dense_rank=np.array([1, 2, 0], dtype=np.int32),
        bm25_rank=np.array([0, 2, 1], dtype=np.int32),
    )
    rrf = fuse(c, FusionConfig(FusionMethod.RRF, rrf_k=60))
    assert rrf[0] == pytest.approx((1 / 61) * 61 / 2)
    assert rrf[1] == pytest.approx((2 / 62) * 61 / 2)  # ranked by both: best
    assert rrf.argmax() == 1
    weighted = fuse(c, FusionConfig(FusionMethod.WEIGHTED, dense_weight=0.5))
    assert weighted.tolist() == pytest.approx([0.45, 0.5, 0.6])
    assert fuse(c, FusionConfig(FusionMethod.DENSE)).tolist() == pytest.approx([0.9, 0.5, 0.2])
    assert fuse(c, FusionConfig(FusionMethod.BM25)).tolist() == pytest.approx([0.0, 0.5, 1.0])
    with pytest.raises(ValueError):
        FusionConfig(dense_weight=1.5)


def test_acl_rule_and_table() -> None:
    assert visible(frozenset(), frozenset())
    assert visible(LEGAL, frozenset({"legal-team", "x"}))
    assert not visible(LEGAL, OTHER)
    table = AclTable.from_rows([frozenset(), LEGAL, OTHER, LEGAL | OTHER])
    assert table.filter(LEGAL | OTHER) is None  # sees everything
    public = table.filter(frozenset())
    assert public is not None and public.mask.tolist() == [True, False, False, False]
    assert public.visible == 1 and public.fraction == 0.25
    member = table.filter(LEGAL)
    assert member is not None and member.mask.tolist() == [True, True, False, True]
    assert member.weights.tolist() == [1.0, 1.0, 0.0, 1.0]
    assert np.unpackbits(member.bitmap, bitorder="little")[:4].tolist() == [1, 1, 0, 1]
    assert table.filter(LEGAL) is member  # cached per caller group set


def build(n: int, threshold: int, restricted_every: int = 3) -> tuple[DomainIndex, np.ndarray]:
    vectors = unit_rows(n)
    entries = [
        IndexEntry(
            chunk_id=1000 + i,
            text=f"chunk {i} " + ("refund policy annual plan" if i % 10 == 0 else "invoice pdf download"),
            groups=LEGAL if i % restricted_every == 0 else frozenset(),
        )
        for i in range(n)
    ]
    return DomainIndex.build(entries, vectors, IndexConfig(hnsw_threshold=threshold, candidates=20)), vectors


@pytest.mark.parametrize("threshold", [10_000, 50])
def test_search_never_returns_rows_the_caller_may_not_see(threshold: int) -> None:
    index, vectors = build(300, threshold)
    assert index.kind == ("hnsw" if threshold == 50 else "flat")
    for row in range(0, 300, 7):
        public = index.search(vectors[row], "refund policy", frozenset(), 10)
        assert len(public) == 10
        assert all((h.chunk_id - 1000) % 3 != 0 for h in public)
        member = index.search(vectors[row], "refund policy", LEGAL, 10)
        assert member[0].chunk_id == 1000 + row  # its own vector is the best match
        assert member[0].dense_rank == 1


def test_hybrid_combines_both_signals_and_scores_are_sorted() -> None:
    index, vectors = build(200, 10_000)
    hits = index.search(vectors[5], "refund policy annual", LEGAL, 8)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert hits[0].chunk_id == 1005  # exact vector match
    assert any(h.bm25_rank is not None for h in hits)
    # Every returned candidate carries both scores, even when only one list found it.
    assert all(h.dense_score is not None and h.bm25_score is not None for h in hits)
    bm25_only = index.search(vectors[5], "refund policy annual", LEGAL, 5, config=FusionConfig(FusionMethod.BM25))
    assert all((h.chunk_id - 1000) % 10 == 0 for h in bm25_only)


def test_hnsw_matches_exact_search_closely() -> None:
    exact, vectors = build(2000, 1_000_000)
    graph, _ = build(2000, 100)
    dense = FusionConfig(FusionMethod.DENSE)
    overlap = []
    for row in range(0, 2000, 50):
        a = {h.chunk_id for h in exact.search(vectors[row], "", LEGAL, 10, config=dense)}
        b = {h.chunk_id for h in graph.search(vectors[row], "", LEGAL, 10, config=dense)}
        overlap.append(len(a & b) / 10)
    assert np.mean(overlap) >= 0.9


def test_restrictive_filter_on_hnsw_still_finds_the_exact_best_visible_rows() -> None:
    # Only 2% of rows are public: graph search over a mostly filtered-out graph would
    # miss them, so the index searches the visible rows exactly instead.
    vectors = unit_rows(2000, seed=3)
    entries = [IndexEntry(i, "text", frozenset() if i % 50 == 0 else LEGAL) for i in range(2000)]
    index = DomainIndex.build(entries, vectors, IndexConfig(hnsw_threshold=100, candidates=10))
    assert index.kind == "hnsw"
    public = np.arange(0, 2000, 50)
    dense = FusionConfig(FusionMethod.DENSE)
    for row in (1, 7, 333):
        expected = public[np.argsort(-(vectors[public] @ vectors[row]))[:5]].tolist()
        hits = index.search(vectors[row], "", frozenset(), 5, config=dense)
        assert [h.chunk_id for h in hits] == expected


def test_empty_index_and_no_visible_rows() -> None:
    empty = DomainIndex.build([], np.zeros((0, 32), dtype=np.float32), dim=32)
    assert len(empty) == 0 and empty.search(unit_rows(1)[0], "x", frozenset(), 5) == []
    index, vectors = build(30, 10_000, restricted_every=1)
    assert index.search(vectors[0], "refund", OTHER, 5) == []


def test_snippet_centres_on_the_matching_sentence() -> None:
    text = " ".join(f"Filler sentence number {i} about nothing." for i in range(30))
    text += " The reset link is valid for 30 minutes. " + " ".join(f"Tail {i}." for i in range(30))
    out = snippet(text, "how long is the reset link valid", 120)
    assert "reset link is valid for 30 minutes" in out
    assert out.startswith("... ") and out.endswith(" ...")
    assert snippet("short text", "q") == "short text"
