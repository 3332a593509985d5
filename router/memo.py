"""What the router worked out for texts seen lately, so that a repeated request skips it.

The same question comes back: "how do I reset my password" asked by two hundred people
is two hundred identical texts. An encoder is a pure function of its model and the text,
and a gate's scores are a pure function of the gate and the text; so a repeated text's
vectors and scores can be taken from memory instead of from transformer passes and a
product with the gate's bank (the costliest steps of a request that the response cache
answers: docs/cache.md). What is served is the very object made for that text the first
time (the same vector bit for bit, the same frozen scores), so nothing after it (the
gate's policy, the safety check, the response cache, retrieval) can tell the difference.
The policy still runs on every request: the caller's experts and the experts' load are
never remembered.

One :class:`TextMemo` per process, bounded (least recently used out first), keyed by
what made the value (the encoder's name; a gate activation's own key) and the exact text.
Two models' vectors are never confused: a gate's routing-tuned encoder has a name of its
own. :meth:`TextMemo.wrap` gives an :class:`~router.encoder.Encoder` that reads and fills
it. Thread-safe: encodes run in worker threads; two threads that miss on the same text
both compute it, and the second write is an equal value.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from router.encoder import Encoder, Vectors

T = TypeVar("T")
# Texts longer than this are not kept (a pasted log is rarely sent twice, and its entry
# would be as large as its vector).
MAX_TEXT_CHARS = 2_000


class TextMemo:
    """At most ``max_entries`` values, the least recently used dropped first."""

    def __init__(self, max_entries: int = 8192) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._values: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._values)

    def recall(self, maker: str, texts: Sequence[str], make: Callable[[list[str]], Sequence[T]]) -> list[T]:
        """Each text's value as ``make`` (named ``maker``) made it, calling ``make`` only
        for the texts not remembered, each once, in one call."""
        found: dict[str, T] = {}
        with self._lock:
            for text in texts:
                key = (maker, text)
                if key in self._values:
                    self._values.move_to_end(key)
                    found[text] = self._values[key]
            self.hits += len(found)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            made = list(make(missing))
            if len(made) != len(missing):
                raise ValueError(f"{maker} made {len(made)} values for {len(missing)} texts")
            with self._lock:
                self.misses += len(missing)
                for text, value in zip(missing, made, strict=True):
                    found[text] = value
                    if len(text) <= MAX_TEXT_CHARS:
                        self._values[(maker, text)] = value
                        self._values.move_to_end((maker, text))
                while len(self._values) > self._max:
                    self._values.popitem(last=False)
        return [found[t] for t in texts]

    def encode(self, encoder: Encoder, texts: Sequence[str]) -> Vectors:
        """``encoder.encode(texts)``, with the texts it has seen lately taken from memory."""
        if not texts:
            return np.zeros((0, encoder.dim), dtype=np.float32)

        def make(missing: list[str]) -> list[np.ndarray]:
            rows = []
            for row in encoder.encode(missing):
                vector = np.array(row)  # its own copy, not a view that holds the whole batch
                vector.setflags(write=False)
                rows.append(vector)
            return rows

        return np.stack(self.recall(f"vector:{encoder.name}", texts, make))

    def wrap(self, encoder: Encoder) -> MemoizedEncoder:
        """``encoder`` reading its vectors from this memo first."""
        if isinstance(encoder, MemoizedEncoder):
            encoder = encoder.inner
        return MemoizedEncoder(self, encoder)


class MemoizedEncoder:
    """An :class:`~router.encoder.Encoder` over ``inner`` that asks ``memo`` first."""

    def __init__(self, memo: TextMemo, inner: Encoder) -> None:
        self.memo = memo
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim

    def encode(self, texts: Sequence[str]) -> Vectors:
        return self.memo.encode(self.inner, texts)
