"""Router: encode -> gate scores -> decision policy. The package's front door."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from router.encoder import Encoder, Vectors
from router.policy import DecisionPolicy
from router.types import RouteRequest, RoutingDecision, Scores


class Scorer(Protocol):
    """A gate: scores encoded texts. ``version`` names the artifact it came from."""

    version: str
    experts: tuple[str, ...]

    def score(self, vectors: Vectors) -> list[Scores]: ...


class Router:
    """Routes requests. Thread-safe; the scorer can be swapped while serving."""

    def __init__(self, encoder: Encoder, scorer: Scorer, policy: DecisionPolicy) -> None:
        self.encoder = encoder
        self.policy = policy
        self._scorer = scorer
        self._lock = threading.Lock()

    @property
    def scorer(self) -> Scorer:
        return self._scorer

    @property
    def version(self) -> str:
        return self._scorer.version

    def swap(self, scorer: Scorer) -> None:
        """Replace the gate atomically; requests in flight finish on the old one."""
        with self._lock:
            self._scorer = scorer

    def route(self, request: RouteRequest) -> RoutingDecision:
        return self.route_many([request])[0]

    def route_many(self, requests: Sequence[RouteRequest]) -> list[RoutingDecision]:
        """Route a batch with one encoder call. Raises ExpertNotAllowed, UnknownExpertName."""
        scorer = self._scorer  # one gate for the whole batch, even if swapped meanwhile
        vectors = self.encoder.encode([r.text for r in requests])
        scores = scorer.score(vectors)
        return [
            self.policy.decide(s, r, scorer.version) for s, r in zip(scores, requests, strict=True)
        ]
