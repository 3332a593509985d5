"""Router: encode -> gate scores -> decision policy. The package's front door."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from router.encoder import Encoder, Vectors
from router.policy import DecisionPolicy
from router.types import RouteRequest, RoutingDecision, Scores


class Scorer(Protocol):
    """A gate: scores encoded texts. ``version`` names the artifact it came from."""

    version: str
    experts: tuple[str, ...]

    def score(self, texts: Sequence[str], vectors: Vectors) -> list[Scores]: ...


@dataclass(frozen=True)
class ShadowStats:
    version: str | None
    compared: int
    agreed: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


@dataclass(frozen=True)
class _Active:
    scorer: Scorer
    policy: DecisionPolicy


class Router:
    """Routes requests. Thread-safe; gate and shadow can be swapped while serving."""

    def __init__(self, encoder: Encoder, scorer: Scorer, policy: DecisionPolicy) -> None:
        self.encoder = encoder
        self._active = _Active(scorer, policy)
        self._shadow: _Active | None = None
        self._lock = threading.Lock()
        self._compared = 0
        self._agreed = 0

    @property
    def scorer(self) -> Scorer:
        return self._active.scorer

    @property
    def policy(self) -> DecisionPolicy:
        return self._active.policy

    @property
    def version(self) -> str:
        return self._active.scorer.version

    def swap(self, scorer: Scorer, policy: DecisionPolicy | None = None) -> None:
        """Replace the gate (and its policy) atomically; in-flight batches finish on the old."""
        with self._lock:
            self._active = _Active(scorer, policy or self._active.policy)

    def set_shadow(self, scorer: Scorer | None, policy: DecisionPolicy | None = None) -> None:
        """Run ``scorer`` beside the active gate on every request, recording agreement."""
        with self._lock:
            self._shadow = None if scorer is None else _Active(scorer, policy or self._active.policy)
            self._compared = self._agreed = 0

    def shadow_stats(self) -> ShadowStats:
        with self._lock:
            shadow = self._shadow
            return ShadowStats(shadow.scorer.version if shadow else None, self._compared, self._agreed)

    def route(self, request: RouteRequest) -> RoutingDecision:
        return self.route_many([request])[0]

    def route_many(self, requests: Sequence[RouteRequest]) -> list[RoutingDecision]:
        """Route a batch with one encoder call. Raises ExpertNotAllowed, UnknownExpertName."""
        active, shadow = self._active, self._shadow  # one gate for the whole batch
        texts = [r.text for r in requests]
        vectors = self.encoder.encode(texts)
        scores = active.scorer.score(texts, vectors)
        decisions = [active.policy.decide(s, r, active.scorer.version) for s, r in zip(scores, requests, strict=True)]
        if shadow is None:
            return decisions
        shadow_scores = shadow.scorer.score(texts, vectors)
        out = []
        agreed = 0
        for decision, s, r in zip(decisions, shadow_scores, requests, strict=True):
            other = shadow.policy.decide(s, r, shadow.scorer.version)
            agreed += other.expert == decision.expert
            out.append(dataclasses.replace(decision, shadow_expert=other.expert, shadow_version=shadow.scorer.version))
        with self._lock:
            if self._shadow is shadow:
                self._compared += len(out)
                self._agreed += agreed
        return out
