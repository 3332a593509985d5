"""Where cached answers are kept: the store protocol and the in-process store.

A store holds answers per *scope* (keys.py), each under its question's text key and
*variant*, and, when given, the question's embedding (a unit vector). The variant tells
apart answers to the same text that callers with different access got (their cited
documents' groups, keys.acl_variant): one caller's answer without a restricted
document never replaces another's that cites it. :meth:`CacheStore.find` offers the
candidates for a question, best first: the exact text matches (those citing more
passages first), then the answers whose question is at least ``threshold``
cosine-similar, most similar first. Expired answers
are never offered. The caller (service.py) still checks each candidate's index versions
and ACL before replaying it.

:class:`MemoryStore` is the embedded default: one process, nothing shared. Several
replicas share :class:`backend.cache.redis_store.RedisStore`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import numpy as np

from backend.cache.types import CachedAnswer, Candidate, MatchKind, Vector


class CacheStore(Protocol):
    async def find(
        self, scope: str, text_key: str, vector: Vector | None, threshold: float, limit: int
    ) -> list[Candidate]:
        """The exact matches and at most ``limit`` semantic ones, best first (module
        docstring)."""
        ...

    async def put(
        self, scope: str, text_key: str, variant: str, vector: Vector | None, answer: CachedAnswer, max_entries: int
    ) -> None:
        """Keep ``answer`` until ``answer.expires_at``; the oldest answers of the scope go
        once it holds more than ``max_entries``. An answer under the same text key and
        variant replaces the one before it."""
        ...


def rank_exact(candidates: list[Candidate]) -> list[Candidate]:
    """Exact matches, the answer citing the most passages first (the richest one the
    caller may read wins; ties: the newest)."""
    return sorted(candidates, key=lambda c: (-len(c.answer.passages), -c.answer.stored_at))


def unit(vector: Vector) -> Vector:
    """``vector`` as float32 of length 1 (cosine = dot product)."""
    row = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(row))
    return row / norm if norm > 0 else row


class VectorSet:
    """The embeddings of one scope's questions in one matrix, slots reused: a lookup is
    one matrix-vector product. Not thread-safe (one event loop)."""

    def __init__(self, dim: int) -> None:
        self._matrix = np.zeros((16, dim), dtype=np.float32)
        self._ids: list[str | None] = [None] * 16
        self._slot: dict[str, int] = {}
        self._free: list[int] = list(range(15, -1, -1))

    def __len__(self) -> int:
        return len(self._slot)

    @property
    def dim(self) -> int:
        return int(self._matrix.shape[1])

    def add(self, entry_id: str, vector: Vector) -> None:
        self.remove(entry_id)
        if not self._free:
            size = len(self._ids)
            self._matrix = np.vstack([self._matrix, np.zeros_like(self._matrix)])
            self._ids += [None] * size
            self._free = list(range(2 * size - 1, size - 1, -1))
        slot = self._free.pop()
        self._matrix[slot] = vector
        self._ids[slot] = entry_id
        self._slot[entry_id] = slot

    def remove(self, entry_id: str) -> None:
        slot = self._slot.pop(entry_id, None)
        if slot is not None:
            self._matrix[slot] = 0.0  # similarity 0: never above a threshold
            self._ids[slot] = None
            self._free.append(slot)

    def nearest(self, vector: Vector, threshold: float, limit: int) -> list[tuple[str, float]]:
        """(id, cosine) of up to ``limit`` questions at or above ``threshold``, best first."""
        if not self._slot:
            return []
        sims = self._matrix @ vector
        above = np.flatnonzero(sims >= threshold)
        best = above[np.argsort(-sims[above], kind="stable")][:limit]
        return [(i, float(sims[s])) for s in best if (i := self._ids[s]) is not None]


class _Scope:
    def __init__(self) -> None:
        # id -> (text key, variant, answer), oldest first
        self.answers: OrderedDict[str, tuple[str, str, CachedAnswer]] = OrderedDict()
        self.exact: dict[str, dict[str, str]] = {}  # text key -> variant -> id
        self.vectors: VectorSet | None = None

    def drop(self, entry_id: str) -> None:
        key, variant, _ = self.answers.pop(entry_id)
        variants = self.exact.get(key, {})
        if variants.get(variant) == entry_id:
            del variants[variant]
            if not variants:
                del self.exact[key]
        if self.vectors is not None:
            self.vectors.remove(entry_id)


class MemoryStore:
    """The in-process store (module docstring). ``clock``: epoch seconds (tests move it)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._scopes: dict[str, _Scope] = {}
        self._clock = clock

    def __len__(self) -> int:
        return sum(len(s.answers) for s in self._scopes.values())

    async def find(
        self, scope: str, text_key: str, vector: Vector | None, threshold: float, limit: int
    ) -> list[Candidate]:
        held = self._scopes.get(scope)
        if held is None:
            return []
        now = self._clock()
        exact: list[Candidate] = []
        exact_ids = set(held.exact.get(text_key, {}).values())
        for entry_id in exact_ids:
            answer = held.answers[entry_id][2]
            if answer.expires_at > now:
                exact.append(Candidate(answer, MatchKind.EXACT, 1.0))
            else:
                held.drop(entry_id)
        out = rank_exact(exact)
        if vector is not None and held.vectors is not None and held.vectors.dim == vector.shape[0]:
            semantic = 0
            for entry_id, similarity in held.vectors.nearest(vector, threshold, limit + len(exact_ids)):
                if semantic >= limit:
                    break
                if entry_id in exact_ids:
                    continue
                answer = held.answers[entry_id][2]
                if answer.expires_at <= now:
                    held.drop(entry_id)
                    continue
                out.append(Candidate(answer, MatchKind.SEMANTIC, similarity))
                semantic += 1
        return out

    async def put(
        self, scope: str, text_key: str, variant: str, vector: Vector | None, answer: CachedAnswer, max_entries: int
    ) -> None:
        held = self._scopes.setdefault(scope, _Scope())
        previous = held.exact.get(text_key, {}).get(variant)
        if previous is not None:
            held.drop(previous)
        if answer.request_id in held.answers:
            held.drop(answer.request_id)
        held.answers[answer.request_id] = (text_key, variant, answer)
        held.exact.setdefault(text_key, {})[variant] = answer.request_id
        if vector is not None:
            if held.vectors is None:
                held.vectors = VectorSet(vector.shape[0])
            held.vectors.add(answer.request_id, vector)
        now = self._clock()
        while held.answers:  # the oldest go first: expired ones, then over the bound
            oldest_id, (_, _, oldest) = next(iter(held.answers.items()))
            if len(held.answers) <= max_entries and oldest.expires_at > now:
                break
            held.drop(oldest_id)
