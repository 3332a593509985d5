"""Frozen values of the response cache: what is kept, what a lookup found, and what the
response and the audit event say about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from backend.knowledge.types import Retrieval, RetrievedPassage
from experts.types import Usage

Vector = npt.NDArray[np.float32]


class CacheStatus(StrEnum):
    """What the cache did for one request (stable strings: API, audit, metrics)."""

    HIT = "hit"
    MISS = "miss"
    BYPASS = "bypass"  # the caller sent ``Cache-Control: no-cache``: not looked up
    SKIPPED = "skipped"  # not a cacheable request (a later turn, PII in it, no vector)


class MatchKind(StrEnum):
    EXACT = "exact"  # the same question text (after normalisation)
    SEMANTIC = "semantic"  # the router's embedding at or above the expert's threshold


@dataclass(frozen=True, slots=True)
class CachedPassage:
    """A passage a cached answer cites, with the groups its document was restricted to
    when the answer was kept (the ACL a later caller is checked against). The passage
    text itself is not kept: the answer and its snippet are what is replayed."""

    number: int
    chunk_id: int
    document_id: int
    domain: str
    title: str
    source: str
    location: str
    snippet: str
    score: float
    groups: frozenset[str]

    def as_retrieved(self) -> RetrievedPassage:
        return RetrievedPassage(
            number=self.number, chunk_id=self.chunk_id, document_id=self.document_id, domain=self.domain,
            title=self.title, source=self.source, location=self.location, text="", snippet=self.snippet,
            score=self.score,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """One delivered answer, kept for replay.

    ``request_id``: the request that produced it (the audit event a hit points to).
    ``index_versions``: (domain, version) of every index its retrieval searched; a hit
    needs each one still current. ``stored_at``/``expires_at``: epoch seconds.
    """

    request_id: str
    expert: str
    question: str
    text: str
    upstream_model: str
    usage: Usage
    passages: tuple[CachedPassage, ...]
    domains: tuple[str, ...]
    index_versions: tuple[tuple[str, str], ...]
    grounding: Mapping[str, object] | None
    stored_at: float
    expires_at: float

    def retrieval(self) -> Retrieval:
        """The passages as the original answer cited them (no text: see CachedPassage)."""
        return Retrieval(
            passages=tuple(p.as_retrieved() for p in self.passages),
            domains=self.domains,
            index_versions=self.index_versions,
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored answer a store offers for a question, with how it matched."""

    answer: CachedAnswer
    match: MatchKind
    similarity: float  # cosine of the two questions' embeddings (1.0 for an exact match)


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """What the lookup decided for one request (stage 3d).

        ``scope``: the partition an answer to this request is kept under (None: the
        request's answer is not cacheable at all: the expert's cache is off, or it is not a
        first turn). ``hit``: the answer to replay. ``rejected``: candidates passed over,
        by reason (``stale``, ``forbidden``, ``expired``), for the record. ``vector``: the
    question's unit vector as the store compared it.
    """

    status: CacheStatus
    expert: str
    scope: str | None = None
    text_key: str | None = None
    hit: Candidate | None = None
    rejected: Mapping[str, int] = field(default_factory=dict)
    vector: Vector | None = None  # the question's unit vector as compared (kept with its answer)
    ms: float = 0.0

    def record(self) -> dict[str, object]:
        """The ``cache`` object of the audit event, the route record and the response."""
        out: dict[str, object] = {"status": str(self.status), "ms": round(self.ms, 3)}
        if self.hit is not None:
            out |= {
                "match": str(self.hit.match),
                "similarity": round(self.hit.similarity, 4),
                "source_request_id": self.hit.answer.request_id,
                "tokens_saved": self.hit.answer.usage.total_tokens,
            }
        if self.rejected:
            out["rejected"] = dict(self.rejected)
        return out
