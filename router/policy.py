"""The decision policy: gate scores + caller constraints -> one RoutingDecision.

Deterministic: the same scores, request and config give the same decision. Order of
rules (each one records its reason):

1. an explicit, allowed expert request wins (``requested``); a forbidden one raises.
   The router applies this rule before encoding (:meth:`DecisionPolicy.requested`), so a
   named expert costs no encoder pass;
2. experts the caller may not use are removed and the rest renormalised;
3. an input far from every expert's data goes to the generalist (``out_of_domain``);
4. a follow-up with no clear new domain stays with the conversation's expert (``context``):
   leaving it takes ``switch_confidence``, and ``switch_to_general`` for the generalist;
5. a best expert below ``min_confidence`` yields to the generalist (``low_confidence``);
6. an expert at capacity overflows to the next top-k expert whose probability clears
   ``overflow_min_prob`` and has room, else to the generalist (``overflow``).

Rule 6 reads the in-flight counts passed in the request. The API's admission applies the
same rule with exact slots (:meth:`DecisionPolicy.overflow_order`, ``overflowed``) after
an atomic acquire fails, so the order of candidates is defined here once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from router.errors import ExpertNotAllowed, UnknownExpertName
from router.types import Reason, RouteRequest, RoutingDecision, Scores

GENERALIST = "general"


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    min_confidence: float = 0.5
    ood_threshold: float = 0.15
    top_k: int = 2
    top_k_margin: float = 0.25
    overflow_min_prob: float = 0.2
    switch_confidence: float = 0.85
    # Leaving a conversation's expert for the generalist takes more: a vague follow-up
    # ("and the second one?") looks like small talk on its own (docs/router.md).
    switch_to_general: float = 0.97


class DecisionPolicy:
    def __init__(self, config: PolicyConfig, capacities: Mapping[str, int]) -> None:
        self.config = config
        self._capacities = dict(capacities)

    def decide(self, scores: Scores, request: RouteRequest, version: str) -> RoutingDecision:
        """Apply the rules in the module docstring. Raises ExpertNotAllowed, UnknownExpertName."""
        cfg = self.config
        probs = dict(scores.probabilities)

        def allowed(name: str) -> bool:
            return request.allowed is None or name in request.allowed or name == GENERALIST

        def make(expert: str, reason: Reason, top: tuple[str, ...], detail: str = "") -> RoutingDecision:
            return RoutingDecision(
                expert=expert,
                confidence=round(probs.get(expert, 0.0), 6),
                reason=reason,
                probabilities={k: round(v, 6) for k, v in probs.items()},
                top_k=top,
                router_version=version,
                ood_score=round(scores.in_domain, 6),
                detail=detail,
            )

        if request.requested is not None:
            return self.requested(request, probs, version)

        removed = sorted(n for n in probs if not allowed(n))
        for name in removed:
            probs[name] = 0.0
        total = sum(probs.values())
        if total <= 0:
            return make(GENERALIST, Reason.NOT_ALLOWED, (GENERALIST,), "no permitted expert")
        probs = {k: v / total for k, v in probs.items()}

        ranked = sorted(probs, key=lambda n: (-probs[n], n))
        best = ranked[0]
        top = tuple(n for n in ranked[: cfg.top_k] if probs[n] > 0 and probs[n] >= probs[best] - cfg.top_k_margin)
        note = f"removed (not allowed): {', '.join(removed)}" if removed else ""

        prev = request.previous_expert
        if (
            prev is not None
            and prev != best
            and prev in probs
            and allowed(prev)
            and probs[best] < (cfg.switch_to_general if best == GENERALIST else cfg.switch_confidence)
        ):
            chosen, reason = prev, Reason.CONTEXT
        elif scores.in_domain < cfg.ood_threshold and prev is None:
            return make(GENERALIST, Reason.OUT_OF_DOMAIN, top, note)
        elif best != GENERALIST and probs[best] < cfg.min_confidence:
            return make(GENERALIST, Reason.LOW_CONFIDENCE, top, note)
        else:
            chosen, reason = best, Reason.ROUTED

        decision = make(chosen, reason, top, note)
        if not self._full(chosen, request):
            return decision
        full = [chosen]
        for alt in self.overflow_order(decision):
            if not self._full(alt, request):
                return self.overflowed(decision, alt, full)
            full.append(alt)
        raise AssertionError("overflow_order always ends at the generalist, which is never full")

    @staticmethod
    def requested(request: RouteRequest, experts: Collection[str], version: str) -> RoutingDecision:
        """Rule 1 without gate scores, for a request that names its expert.

        The gate's probabilities cannot change where such a request goes, so the router
        does not run the encoder for it: the decision gives the named expert probability
        1 and every other expert 0 (the same keys as a routed decision, for audit and
        dashboards) and no in-domain score (``ood_score`` 0). Raises ExpertNotAllowed,
        UnknownExpertName.
        """
        name = request.requested
        if name is None:
            raise ValueError("the request names no expert")
        if name not in experts and name != GENERALIST:
            raise UnknownExpertName(name)
        if request.allowed is not None and name not in request.allowed and name != GENERALIST:
            raise ExpertNotAllowed(name)
        return RoutingDecision(
            expert=name,
            confidence=1.0,
            reason=Reason.REQUESTED,
            probabilities={expert: float(expert == name) for expert in (*experts, name)},
            top_k=(name,),
            router_version=version,
            ood_score=0.0,
            detail="named by the caller; gate not run",
        )

    def overflow_order(self, decision: RoutingDecision) -> tuple[str, ...]:
        """Where ``decision`` may overflow when its expert is at capacity, in order.

        The other top-k experts whose probability clears ``overflow_min_prob``, then the
        generalist. Empty for an explicitly requested expert (the caller asked for that
        one) and for the generalist (the sink: nothing is cheaper to fall to).
        """
        if decision.reason is Reason.REQUESTED or decision.expert == GENERALIST:
            return ()
        alternatives = [
            alt
            for alt in decision.top_k
            if alt not in (decision.expert, GENERALIST)
            and decision.probabilities.get(alt, 0.0) >= self.config.overflow_min_prob
        ]
        return (*alternatives, GENERALIST)

    @staticmethod
    def overflowed(decision: RoutingDecision, expert: str, full: Sequence[str]) -> RoutingDecision:
        """``decision`` rerouted to ``expert`` because every expert in ``full`` was at capacity."""
        return replace(
            decision,
            expert=expert,
            confidence=round(decision.probabilities.get(expert, 0.0), 6),
            reason=Reason.OVERFLOW,
            detail="; ".join(f"{name} at capacity" for name in full),
        )

    def _full(self, name: str, request: RouteRequest) -> bool:
        if name == GENERALIST:
            return False  # the generalist is the sink; its own limit is enforced on admission
        cap = self._capacities.get(name)
        return cap is not None and request.in_flight.get(name, 0) >= cap
