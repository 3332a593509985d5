"""The embedding helpers: order kept across length-sorted batches, bad output refused."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from retrieval.embedding import LazyEmbedder, embed
from retrieval.errors import EmbeddingError
from tests.fakes.embedder import HashEmbedder


def test_rows_come_back_in_input_order_with_progress() -> None:
    model = HashEmbedder()
    texts = ["refund " * k for k in (7, 1, 4)] + ["invoice", "plan change now", "x"]
    seen: list[int] = []
    out = embed(model, texts, batch_size=2, on_batch=seen.append)
    assert np.allclose(out, model.encode(texts), atol=1e-6)
    assert seen == [2, 2, 2]
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)


class Broken:
    name, dim = "broken", 4

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.rows[: len(texts)]


def test_wrong_shapes_and_values_are_refused() -> None:
    with pytest.raises(EmbeddingError, match="shape"):
        embed(Broken(np.ones((1, 4), dtype=np.float32)), ["a", "b"])
    with pytest.raises(EmbeddingError, match="zero"):
        embed(Broken(np.zeros((2, 4), dtype=np.float32)), ["a", "b"])
    with pytest.raises(EmbeddingError, match="NaN"):
        embed(Broken(np.full((2, 4), np.nan, dtype=np.float32)), ["a", "b"])


def test_lazy_embedder_loads_once_on_first_use_and_checks_the_dimension() -> None:
    loads: list[int] = []

    def factory() -> HashEmbedder:
        loads.append(1)
        return HashEmbedder(dim=64)

    lazy = LazyEmbedder("hash-bow-64", 64, factory)
    assert not lazy.loaded and loads == []
    lazy.encode(["a"])
    lazy.encode(["b"])
    assert lazy.loaded and loads == [1]
    with pytest.raises(EmbeddingError, match="dimensions"):
        LazyEmbedder("x", 384, factory).encode(["a"])
