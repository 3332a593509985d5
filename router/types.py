"""Frozen values the router takes and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    """Why the decision went where it went (stable strings: they land in audit and APIs)."""

    ROUTED = "routed"  # the gate's confident top expert
    REQUESTED = "requested"  # the caller named an expert it may use
    CONTEXT = "context"  # a follow-up kept with the conversation's expert
    LOW_CONFIDENCE = "low_confidence"  # best expert below the confidence bar -> generalist
    OUT_OF_DOMAIN = "out_of_domain"  # far from every expert's data -> generalist
    OVERFLOW = "overflow"  # best expert at capacity -> next in top-k or generalist
    NOT_ALLOWED = "not_allowed"  # every candidate expert was forbidden -> generalist
    DEGRADED = "degraded"  # over a quota whose policy is degrade -> generalist
    SAFETY = "safety"  # flagged by the input safety check, an expert's policy says generalist


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """One request to route.

    ``allowed``: experts the caller may use (None = all). ``requested``: an expert the
    caller asked for by name. ``previous_expert``: the expert that answered the last turn
    of this conversation. ``in_flight``: current in-flight requests per expert, passed in
    by the caller (the router keeps no load state of its own).
    """

    text: str
    history: tuple[str, ...] = ()
    previous_expert: str | None = None
    allowed: frozenset[str] | None = None
    requested: str | None = None
    in_flight: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    expert: str
    confidence: float
    reason: Reason
    probabilities: Mapping[str, float]
    top_k: tuple[str, ...]
    router_version: str
    ood_score: float
    detail: str = ""
    shadow_expert: str | None = None  # what a candidate gate in shadow mode would have chosen
    shadow_version: str | None = None


@dataclass(frozen=True, slots=True)
class Scores:
    """Gate output for one text: a probability per expert, and an in-domain score.

    ``in_domain`` is a similarity in [-1, 1]; low means unlike anything the gate knows.
    """

    probabilities: Mapping[str, float]
    in_domain: float
