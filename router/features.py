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


# The word memo (HashedNgrams._word): at most this many words, each of at most
# MEMO_WORD_CHARS characters (a longer one, a hash or a token pasted in, is hashed each
# time and not kept), as one small array each: under 20 MB per instance at worst, a
# few MB for the words people write.
WORDS_REMEMBERED = 20_000
MEMO_WORD_CHARS = 24


class HashedNgrams:
    """Safe to share across threads: the word memo is a dict read and written one
    atomic operation at a time, and what a call returns is what it computed or read."""

    def __init__(self, buckets: int = 1 << 17, char_n: tuple[int, ...] = (3, 4, 5)) -> None:
        self.buckets = buckets
        self.char_n = char_n
        # A word's own id and its character n-grams' ids depend on the word alone, and
        # the words people write repeat: hashing each n-gram of every word again was
        # most of the input safety check's own time on the event loop (issue 24).
        self._words: dict[str, tuple[int, npt.NDArray[np.int64]]] = {}

    def _hash(self, feature: str) -> int:
        return zlib.crc32(feature.encode()) % self.buckets

    def _word(self, word: str) -> tuple[int, npt.NDArray[np.int64]]:
        known = self._words.get(word)
        if known is None:
            padded = f"<{word}>"
            chars = [
                self._hash(f"c:{padded[i : i + n]}") for n in self.char_n for i in range(max(0, len(padded) - n + 1))
            ]
            known = (self._hash(f"w:{word}"), np.array(chars, dtype=np.int64))
            if len(word) <= MEMO_WORD_CHARS:
                if len(self._words) >= WORDS_REMEMBERED:
                    self._words.clear()
                self._words[word] = known
        return known

    def ids(self, text: str) -> npt.NDArray[np.int64]:
        """Bucket ids of the text's features (with repeats); never empty. In order: the
        words, the word bigrams, then each word's character n-grams."""
        words = _WORD.findall(text[:MAX_CHARS].lower())
        if not words:
            return np.array([self._hash("<empty>")], dtype=np.int64)
        known = [self._word(w) for w in words]
        head = [wid for wid, _ in known] + [self._hash(f"b:{a} {b}") for a, b in itertools.pairwise(words)]
        return np.concatenate([np.array(head, dtype=np.int64), *(chars for _, chars in known)])

    def batch(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Flattened ids and per-text offsets (the EmbeddingBag input layout)."""
        all_ids = [self.ids(t) for t in texts]
        offsets = np.cumsum([0] + [len(a) for a in all_ids[:-1]]).astype(np.int64)
        return np.concatenate(all_ids), offsets
