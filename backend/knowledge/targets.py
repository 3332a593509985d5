"""Which indexes a routed request searches, and how much each one's scores count.

The decided expert's index always; and, for each other expert in the decision's top-k
that has an index the caller may use, that index too, its scores weighted by that
expert's gate probability relative to the decided expert's (capped at 1). The
generalist has no index: a request it answers searches nothing.
"""

from __future__ import annotations

from backend.knowledge.service import DomainQuery
from experts.registry import ExpertRegistry
from router.types import RoutingDecision


def weighted_targets(
    decision: RoutingDecision, registry: ExpertRegistry, groups: frozenset[str]
) -> list[DomainQuery]:
    """The indexes to search for ``decision`` by a caller in ``groups`` (empty: none)."""
    spec = registry.get(decision.expert)
    if spec.index is None:
        return []
    own = decision.probabilities.get(decision.expert, 0.0)
    targets = [DomainQuery(spec.index)]
    for other in decision.top_k:
        peer = registry.get(other) if other in registry else None
        if peer is None or other == decision.expert or not peer.index or not peer.allows(groups):
            continue
        weight = min(1.0, decision.probabilities.get(other, 0.0) / own) if own > 0 else 0.0
        if weight > 0 and peer.index not in {t.domain for t in targets}:
            targets.append(DomainQuery(peer.index, weight))
    return targets
