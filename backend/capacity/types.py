"""Frozen values and errors of the capacity package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from backend.errors import ServiceUnavailable
from experts.registry import ExpertRegistry


@dataclass(frozen=True, slots=True)
class Pool:
    """What one expert may hold: ``capacity`` requests in flight in total and, when it
    has replicas, ``replicas[i]`` on replica ``i`` (experts.yaml order)."""

    expert: str
    capacity: int
    replicas: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Slot:
    """One held slot. ``lease`` is unique per acquisition; ``replica`` is the index of the
    chosen replica (None: the expert has no replicas). Release it exactly once."""

    expert: str
    lease: str
    replica: int | None = None


def pools_from(registry: ExpertRegistry) -> dict[str, Pool]:
    """Every expert's pool, from experts.yaml (``capacity`` and ``replicas``)."""
    return {spec.name: Pool(spec.name, spec.capacity, tuple(r.capacity for r in spec.replicas)) for spec in registry}


class CapacityStore(Protocol):
    """Where slots are counted. ``acquire`` is atomic: no two callers can both take the
    last slot of a pool, however many processes share the store."""

    async def acquire(self, pools: Sequence[Pool], lease: str) -> Slot | None:
        """Hold a slot in the first pool of ``pools`` with room (on its least-loaded
        replica with room); None when every pool is full."""
        ...

    async def release(self, slot: Slot) -> None:
        """Give ``slot`` back (a second release of the same slot is harmless)."""
        ...

    async def in_flight(self, experts: Sequence[str]) -> dict[str, int]:
        """Slots held now per expert (experts with none are left out)."""
        ...


class ExpertAtCapacity(ServiceUnavailable):
    """503: the requested expert (or, with overflow, every candidate) is at capacity.

    ``retry_after_s`` feeds the Retry-After header."""

    code = "expert_at_capacity"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message, param="model")
        self.retry_after_s = retry_after_s


class CapacityUnavailable(ServiceUnavailable):
    """503: the capacity store failed and the setting is fail-closed."""

    code = "capacity_unavailable"
