"""Fusing the dense and BM25 candidate lists into one ranking.

Two methods, compared in bench/retrieval_quality.py:

- ``rrf``: reciprocal rank fusion, ``sum 1 / (k + rank)`` over the lists a candidate
  appears in (rank from 1), scaled by ``(k + 1) / 2`` so a candidate ranked first by
  both retrievers scores 1.0.
- ``weighted``: a convex combination of scores, ``w * cos + (1 - w) * bm25 / max_bm25``,
  where every candidate of either list gets both scores (the index computes the
  missing ones exactly), so nothing is penalised for falling just outside one list.
- ``dense`` / ``bm25``: one retriever alone (for measurement and fallbacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt


class FusionMethod(StrEnum):
    RRF = "rrf"
    WEIGHTED = "weighted"
    DENSE = "dense"
    BM25 = "bm25"


@dataclass(frozen=True, slots=True)
class FusionConfig:
    method: FusionMethod = FusionMethod.WEIGHTED
    rrf_k: int = 60
    dense_weight: float = 0.7

    def __post_init__(self) -> None:
        if self.rrf_k < 1:
            raise ValueError("rrf_k must be >= 1")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError("dense_weight must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class Candidates:
    """Scores for the union of both candidate lists (row numbers into the index).

    ``dense_rank`` / ``bm25_rank`` are 1-based ranks within each retriever's own list,
    0 when the row was not in that list. ``dense`` holds cosine similarities and
    ``bm25`` raw BM25 scores for every row (computed even when not ranked).
    """

    rows: npt.NDArray[np.int64]
    dense: npt.NDArray[np.float32]
    bm25: npt.NDArray[np.float32]
    dense_rank: npt.NDArray[np.int32]
    bm25_rank: npt.NDArray[np.int32]


def fuse(candidates: Candidates, config: FusionConfig) -> npt.NDArray[np.float64]:
    """A score in [0, 1] per candidate row (same order as ``candidates.rows``)."""
    method = config.method
    if candidates.rows.size == 0:
        return np.zeros(0, dtype=np.float64)
    if method is FusionMethod.DENSE:
        return np.clip(candidates.dense.astype(np.float64), 0.0, 1.0)
    bm25_max = float(candidates.bm25.max()) if candidates.bm25.size else 0.0
    bm25_norm = (
        candidates.bm25.astype(np.float64) / bm25_max
        if bm25_max > 0
        else (np.zeros(candidates.rows.size, dtype=np.float64))
    )
    if method is FusionMethod.BM25:
        return bm25_norm
    if method is FusionMethod.RRF:
        k = float(config.rrf_k)
        score = np.zeros(candidates.rows.size, dtype=np.float64)
        for ranks in (candidates.dense_rank, candidates.bm25_rank):
            present = ranks > 0
            score[present] += 1.0 / (k + ranks[present])
        return score * (k + 1.0) / 2.0
    w = config.dense_weight
    dense = np.clip(candidates.dense.astype(np.float64), 0.0, 1.0)
    return w * dense + (1.0 - w) * bm25_norm
