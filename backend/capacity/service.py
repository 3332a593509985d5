"""Capacity admission (stage 3c of the pipeline): hold a slot on the routed expert, or
reroute by the router's overflow rule when it is full.

The candidates are the decided expert, then :meth:`DecisionPolicy.overflow_order`
(the other top-k experts likely enough, then the generalist). The store takes the first
with room in one atomic step. When none has room:

- an expert the caller asked for by name (``model="legal"``) is never substituted:
  503 ``expert_at_capacity`` with ``Retry-After``;
- a routed request whose candidates, the generalist included, are all full: the same 503.

A store error follows the configured choice: ``open`` admits without a slot (logged as
an ERROR), ``closed`` answers 503 ``capacity_unavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Literal

from backend.capacity.types import CapacityStore, CapacityUnavailable, ExpertAtCapacity, Pool, Slot
from router.policy import DecisionPolicy
from router.types import RoutingDecision

log = logging.getLogger(__name__)


class CapacityService:
    def __init__(
        self,
        store: CapacityStore,
        pools: Mapping[str, Pool],
        policy: Callable[[], DecisionPolicy],
        *,
        on_store_error: Literal["open", "closed"] = "open",
        retry_after_s: float = 1.0,
    ) -> None:
        """``policy`` returns the active decision policy (it changes with the gate)."""
        self._store = store
        self._pools = dict(pools)
        self._policy = policy
        self._on_store_error = on_store_error
        self._retry_after_s = retry_after_s

    async def admit(self, decision: RoutingDecision, request_id: str) -> tuple[RoutingDecision, Slot | None]:
        """A slot for ``decision`` and the decision that holds it (rerouted with reason
        ``overflow`` when the decided expert was full). Raises ExpertAtCapacity,
        CapacityUnavailable."""
        policy = self._policy()
        names = [decision.expert, *policy.overflow_order(decision)]
        pools = [self._pools[n] for n in names]
        try:
            slot = await self._store.acquire(pools, request_id)
        except Exception as exc:  # the store's errors vary (connection, timeout, script)
            if self._on_store_error == "closed":
                log.error("capacity store failed, refusing request %s (fail-closed): %s", request_id, exc)
                raise CapacityUnavailable("capacity store unavailable; try again shortly") from exc
            log.error("capacity store failed, serving request %s WITHOUT A SLOT (fail-open): %s", request_id, exc)
            return decision, None
        if slot is None:
            raise ExpertAtCapacity(self._full_message(decision, names), self._retry_after_s)
        if slot.expert == decision.expert:
            return decision, slot
        return policy.overflowed(decision, slot.expert, names[: names.index(slot.expert)]), slot

    async def release(self, slot: Slot | None) -> None:
        """Give the slot back. Never raises: a slot the store cannot free expires."""
        if slot is None:
            return
        try:
            await self._store.release(slot)
        except Exception as exc:  # best effort: the lease frees it at the latest
            log.error("capacity store failed releasing %s (the lease will free it): %s", slot.lease, exc)

    async def in_flight(self) -> dict[str, int]:
        """Slots held now per expert, in every process sharing the store."""
        return await self._store.in_flight(list(self._pools))

    def _full_message(self, decision: RoutingDecision, names: list[str]) -> str:
        first = self._pools[decision.expert]
        text = f"the {decision.expert!r} expert is at capacity ({first.capacity} requests in flight)"
        if len(names) > 1:
            text += f", and so are its overflow targets ({', '.join(names[1:])})"
        return f"{text}; retry after {self._retry_after_s:g} s"
