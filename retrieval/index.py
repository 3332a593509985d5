"""One domain's searchable index: FAISS (dense) + BM25 (sparse) + per-row ACL.

Rows are numbered 0..n-1 in build order; ``chunk_ids[row]`` is the SQL chunk id. The
index holds no chunk text: the BM25 statistics and the vectors are derived data, the
text stays in SQL.

Dense search is exact (``IndexFlatIP``) below ``IndexConfig.hnsw_threshold`` rows and
HNSW above it (threshold chosen by bench/retrieval_latency.py; see docs/retrieval.md).
The caller's groups become a row mask that both retrievers apply *inside* the search
(FAISS IDSelectorBitmap, BM25 weight mask), and every hit is checked against the ACL
once more before it is returned: a row the caller may not see is never returned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from retrieval.acl import AclTable, RowFilter
from retrieval.errors import IndexCorrupt
from retrieval.fusion import Candidates, FusionConfig, fuse
from retrieval.tokenize import tokenize
from retrieval.types import Hit, IndexEntry

IndexKind = Literal["flat", "hnsw"]

DENSE_FILE = "dense.faiss"
ROWS_FILE = "rows.npy"
ACL_CODES_FILE = "acl_codes.npy"
ACL_SETS_FILE = "acl_sets.json"
BM25_DIR = "bm25"


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """How an index is built and searched.

    ``hnsw_threshold``: row count from which dense search uses HNSW instead of exact
    search. ``candidates``: how many rows each retriever contributes before fusion.
    ``exact_below_fraction``: when a caller may see less than this fraction of the
    rows, dense search goes exact over the visible rows (graph search degrades when
    most of the graph is filtered out).
    """

    hnsw_threshold: int = 7_500
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64
    candidates: int = 50
    exact_below_fraction: float = 0.2
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    fusion: FusionConfig = field(default_factory=FusionConfig)


class DomainIndex:
    """An immutable, loaded index. ``search`` is thread-safe (read-only structures)."""

    def __init__(
        self,
        *,
        chunk_ids: npt.NDArray[np.int64],
        dense: Any,
        bm25: Any | None,
        acl: AclTable,
        kind: IndexKind,
        dim: int,
        config: IndexConfig,
    ) -> None:
        if not (len(chunk_ids) == len(acl) == dense.ntotal):
            raise IndexCorrupt(
                f"index parts disagree: {len(chunk_ids)} ids, {len(acl)} ACL rows, {dense.ntotal} vectors"
            )
        self.chunk_ids = chunk_ids
        self._dense = dense
        self._bm25 = bm25
        self.acl = acl
        self.kind: IndexKind = kind
        self.dim = dim
        self.config = config

    def __len__(self) -> int:
        return int(self.chunk_ids.size)

    # -- building ------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        entries: Sequence[IndexEntry],
        vectors: npt.NDArray[np.float32],
        config: IndexConfig | None = None,
        *,
        dim: int | None = None,
    ) -> DomainIndex:
        """Index ``entries`` with their unit ``vectors`` (row i belongs to entries[i])."""
        faiss = _faiss()
        config = config or IndexConfig()
        if vectors.ndim != 2 or vectors.shape[0] != len(entries):
            raise ValueError(f"need one vector per entry, got {vectors.shape} for {len(entries)}")
        dim = dim or int(vectors.shape[1])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        kind: IndexKind = "hnsw" if len(entries) >= config.hnsw_threshold else "flat"
        if kind == "hnsw":
            dense = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            dense.hnsw.efConstruction = config.hnsw_ef_construction
        else:
            dense = faiss.IndexFlatIP(dim)
        if len(entries):
            dense.add(vectors)
        bm25 = _build_bm25([e.text for e in entries], config) if entries else None
        return cls(
            chunk_ids=np.asarray([e.chunk_id for e in entries], dtype=np.int64),
            dense=dense,
            bm25=bm25,
            acl=AclTable.from_rows([e.groups for e in entries]),
            kind=kind,
            dim=dim,
            config=config,
        )

    # -- searching -----------------------------------------------------------------
    def search(
        self,
        query_vector: npt.NDArray[np.float32],
        query_text: str,
        groups: frozenset[str],
        k: int,
        *,
        config: FusionConfig | None = None,
    ) -> list[Hit]:
        """The top ``k`` rows the caller (``groups``) may see, best first.

        ``query_vector`` is the unit embedding of ``query_text`` (shape (dim,) or (1, dim)).
        """
        n = len(self)
        if n == 0 or k <= 0:
            return []
        fusion = config or self.config.fusion
        row_filter = self.acl.filter(groups)
        if row_filter is not None and row_filter.visible == 0:
            return []
        query = np.ascontiguousarray(query_vector, dtype=np.float32).reshape(1, self.dim)
        depth = min(n, max(k, self.config.candidates))

        dense_rows, dense_scores = self._dense_search(query, depth, row_filter)
        bm25_all = self._bm25_scores(query_text, row_filter)
        bm25_rows = _top_positive(bm25_all, depth) if bm25_all is not None else np.zeros(0, dtype=np.int64)

        rows = np.unique(np.concatenate([dense_rows, bm25_rows])).astype(np.int64)
        dense_rank = _ranks(rows, dense_rows)
        bm25_rank = _ranks(rows, bm25_rows)
        dense = self._cosines(query, rows, dense_rows, dense_scores)
        bm25 = bm25_all[rows].astype(np.float32) if bm25_all is not None else np.zeros(rows.size, dtype=np.float32)
        fused = fuse(Candidates(rows, dense, bm25, dense_rank, bm25_rank), fusion)
        order = np.lexsort((rows, -fused))  # ties broken by row for determinism
        hits: list[Hit] = []
        for i in order:
            row = int(rows[i])
            if not self.acl.allows(row, groups):  # belt and braces: never leak a row
                continue
            hits.append(
                Hit(
                    chunk_id=int(self.chunk_ids[row]),
                    score=round(float(fused[i]), 6),
                    dense_score=round(float(dense[i]), 6),
                    bm25_score=round(float(bm25[i]), 6) if bm25_all is not None else None,
                    dense_rank=int(dense_rank[i]) or None,
                    bm25_rank=int(bm25_rank[i]) or None,
                )
            )
            if len(hits) == k:
                break
        return hits

    def _dense_search(
        self, query: npt.NDArray[np.float32], depth: int, row_filter: RowFilter | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(rows, cosines) of the best ``depth`` visible rows, best first."""
        faiss = _faiss()
        index = self._dense
        params = None
        if row_filter is not None:
            selector = faiss.IDSelectorBitmap(len(self), faiss.swig_ptr(row_filter.bitmap))
            if self.kind == "hnsw" and row_filter.fraction >= self.config.exact_below_fraction:
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=self._ef(depth))
            else:
                if self.kind == "hnsw":
                    index = faiss.downcast_index(self._dense.storage)
                params = faiss.SearchParameters(sel=selector)
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=self._ef(depth))
        # ``selector`` (and the bitmap it points into, held by row_filter) stay referenced
        # until search returns: SWIG's params object does not keep them alive by itself.
        scores, rows = index.search(query, depth, params=params)
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def _ef(self, depth: int) -> int:
        return max(self.config.hnsw_ef_search, depth)

    def _bm25_scores(self, text: str, row_filter: RowFilter | None) -> npt.NDArray[np.float32] | None:
        """A BM25 score per row (0 for rows the caller may not see), or None without BM25."""
        if self._bm25 is None:
            return None
        tokens = tokenize(text)
        if not tokens:
            return np.zeros(len(self), dtype=np.float32)
        weights = row_filter.weights if row_filter is not None else None
        return np.asarray(self._bm25.get_scores(tokens, weight_mask=weights), dtype=np.float32)

    def _cosines(
        self,
        query: npt.NDArray[np.float32],
        rows: npt.NDArray[np.int64],
        dense_rows: npt.NDArray[np.int64],
        dense_scores: npt.NDArray[np.float32],
    ) -> npt.NDArray[np.float32]:
        """Cosine per row (``rows`` sorted): from the dense search, else from the vectors."""
        out = np.empty(rows.size, dtype=np.float32)
        found = np.zeros(rows.size, dtype=bool)
        where = np.searchsorted(rows, dense_rows)
        out[where] = dense_scores
        found[where] = True
        if not found.all():
            missing = np.flatnonzero(~found)
            out[missing] = self._dense.reconstruct_batch(rows[missing]) @ query[0]
        return out

    # -- persistence -----------------------------------------------------------------
    def save(self, directory: Path) -> list[str]:
        """Write the index files into ``directory``; returns their relative paths."""
        faiss = _faiss()
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._dense, str(directory / DENSE_FILE))
        np.save(directory / ROWS_FILE, self.chunk_ids, allow_pickle=False)
        np.save(directory / ACL_CODES_FILE, self.acl.codes, allow_pickle=False)
        sets = [sorted(s) for s in self.acl.sets]
        (directory / ACL_SETS_FILE).write_text(json.dumps(sets), encoding="utf-8")
        written = [DENSE_FILE, ROWS_FILE, ACL_CODES_FILE, ACL_SETS_FILE]
        if self._bm25 is not None:
            self._bm25.save(str(directory / BM25_DIR), show_progress=False)
            written += [f"{BM25_DIR}/{p.name}" for p in sorted((directory / BM25_DIR).iterdir())]
        return written

    @classmethod
    def load(cls, directory: Path, *, kind: IndexKind, dim: int, config: IndexConfig) -> DomainIndex:
        """Read an index written by :meth:`save`. Raises IndexCorrupt."""
        import bm25s

        faiss = _faiss()
        try:
            dense = faiss.read_index(str(directory / DENSE_FILE))
            chunk_ids = np.load(directory / ROWS_FILE, allow_pickle=False)
            codes = np.load(directory / ACL_CODES_FILE, allow_pickle=False)
            sets = json.loads((directory / ACL_SETS_FILE).read_text(encoding="utf-8"))
            bm25 = None
            if (directory / BM25_DIR).is_dir():
                bm25 = bm25s.BM25.load(str(directory / BM25_DIR), show_progress=False)
        except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
            raise IndexCorrupt(f"cannot read index files in {directory}: {exc}") from exc
        if dense.d != dim:
            raise IndexCorrupt(f"{directory}: vectors have {dense.d} dimensions, expected {dim}")
        if kind == "hnsw":
            dense.hnsw.efSearch = config.hnsw_ef_search
        acl = AclTable([frozenset(s) for s in sets], codes)
        return cls(
            chunk_ids=chunk_ids.astype(np.int64),
            dense=dense,
            bm25=bm25,
            acl=acl,
            kind=kind,
            dim=dim,
            config=config,
        )


def _faiss() -> Any:
    """The faiss module, imported on first use (its partial stubs do not cover the
    search-parameter classes used here)."""
    import faiss

    return faiss


def _build_bm25(texts: list[str], config: IndexConfig) -> Any:
    import bm25s

    retriever = bm25s.BM25(k1=config.bm25_k1, b=config.bm25_b)
    retriever.index([tokenize(t) for t in texts], show_progress=False)
    return retriever


def _top_positive(scores: npt.NDArray[np.float32], depth: int) -> npt.NDArray[np.int64]:
    """Rows of the ``depth`` highest positive scores, best first."""
    top = np.argpartition(-scores, depth - 1)[:depth] if scores.size > depth else np.arange(scores.size)
    top = top[scores[top] > 0]
    return top[np.argsort(-scores[top], kind="stable")].astype(np.int64)


def _ranks(rows: npt.NDArray[np.int64], ranked: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    """1-based rank of each of ``rows`` (sorted, a superset of ``ranked``) in ``ranked``; 0 if absent."""
    out = np.zeros(rows.size, dtype=np.int32)
    out[np.searchsorted(rows, ranked)] = np.arange(1, ranked.size + 1, dtype=np.int32)
    return out
