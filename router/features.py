"""Hashed lexical features: word uni/bigrams and in-word character n-grams.

They complement the sentence embedding where it is weakest for routing: identifiers,
error names, jargon and typos ("TypeError", "bcrypt", "NDA", "invoce"). Hashing keeps
the vocabulary open and the artifact small; crc32 keeps ids stable across processes.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_CHARS = 2000


class HashedNgrams:
    def __init__(self, buckets: int = 1 << 17, char_n: tuple[int, ...] = (3, 4, 5)) -> None:
        self.buckets = buckets
        self.char_n = char_n

    def ids(self, text: str) -> npt.NDArray[np.int64]:
        """Bucket ids of the text's features (with repeats); never empty."""
        words = _WORD.findall(text[:MAX_CHARS].lower())
        feats = [f"w:{w}" for w in words]
        feats += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
        for w in words:
            padded = f"<{w}>"
            for n in self.char_n:
                feats += [f"c:{padded[i : i + n]}" for i in range(max(0, len(padded) - n + 1))]
        if not feats:
            feats = ["<empty>"]
        return np.fromiter((zlib.crc32(f.encode()) % self.buckets for f in feats), dtype=np.int64, count=len(feats))

    def batch(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Flattened ids and per-text offsets (the EmbeddingBag input layout)."""
        all_ids = [self.ids(t) for t in texts]
        offsets = np.cumsum([0] + [len(a) for a in all_ids[:-1]]).astype(np.int64)
        return np.concatenate(all_ids), offsets
