"""A deterministic bag-of-words embedder: hermetic and fast stand-in for MiniLM in unit tests.

Texts sharing words get similar vectors (hashed word counts, L2-normalised), which is
all the retrieval plumbing needs to be tested for real.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from router.encoder import Encoder, Vectors

_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    def __init__(self, dim: int = 64, name: str = "hash-bow-64") -> None:
        self.dim = dim
        self.name = name
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, bucket % self.dim] += 1.0
            out[row, 0] += 1e-3  # never the zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class CountingEncoder:
    """Another encoder (the real one, or a fake), counting its calls and keeping the texts
    it was given, in order."""

    def __init__(self, inner: Encoder) -> None:
        self.name, self.dim = inner.name, inner.dim
        self._inner = inner
        self.calls: list[int] = []
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        self.texts += texts
        return self._inner.encode(texts)
