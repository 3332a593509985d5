"""Vectors of texts seen lately, so that a repeated request skips the encoder.

The same question comes back: "how do I reset my password" asked by two hundred people
is two hundred identical texts. An encoder is a pure function of its model and the text,
so a repeated text's vector can be taken from memory instead of from a transformer pass
(the costliest step of a request that the response cache answers: docs/cache.md). The
vectors served are bit-for-bit the ones the encoder made for that text, so nothing after
it (the gate, the safety check, the response cache, retrieval) can tell the difference.

One :class:`VectorMemo` per process, bounded (least recently used out first), keyed by
the encoder's name and the exact text (two models' vectors are never confused: a gate's
routing-tuned encoder has a name of its own). :meth:`VectorMemo.wrap` gives an
:class:`~router.encoder.Encoder` that reads and fills it. Thread-safe: encodes run in
worker threads; two threads that miss on the same text both encode it, and the second
write is the same vector.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from router.encoder import Encoder, Vectors

# Texts longer than this are not kept (a pasted log is rarely sent twice, and its
# entry would be as large as the vector).
MAX_TEXT_CHARS = 2_000


class VectorMemo:
    """At most ``max_entries`` vectors, the least recently used dropped first."""

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._vectors)

    def wrap(self, encoder: Encoder) -> MemoizedEncoder:
        """``encoder`` reading its vectors from this memo first."""
        if isinstance(encoder, MemoizedEncoder):
            encoder = encoder.inner
        return MemoizedEncoder(self, encoder)

    def encode(self, encoder: Encoder, texts: Sequence[str]) -> Vectors:
        """``encoder.encode(texts)``, with the texts it has seen lately taken from memory."""
        name = encoder.name
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vector = self._vectors.get((name, text))
                if vector is not None:
                    self._vectors.move_to_end((name, text))
                    found[text] = vector
            self.hits += len(found)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            made = encoder.encode(missing)
            with self._lock:
                self.misses += len(missing)
                for text, row in zip(missing, made, strict=True):
                    vector = np.array(row)  # its own copy, not a view that holds the batch
                    vector.setflags(write=False)
                    found[text] = vector
                    if len(text) <= MAX_TEXT_CHARS:
                        self._vectors[(name, text)] = vector
                        self._vectors.move_to_end((name, text))
                while len(self._vectors) > self._max:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, encoder.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])


class MemoizedEncoder:
    """An :class:`~router.encoder.Encoder` over ``inner`` that asks ``memo`` first."""

    def __init__(self, memo: VectorMemo, inner: Encoder) -> None:
        self.memo = memo
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim

    def encode(self, texts: Sequence[str]) -> Vectors:
        return self.memo.encode(self.inner, texts)
