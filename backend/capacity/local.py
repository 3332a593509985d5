"""The in-process capacity store (embedded default): exact within one event loop.

Every decision runs without an ``await``, so no other coroutine can interleave between
the check and the take. Slots carry a lease deadline like the Redis store's: a slot
whose release never ran (a stream the server never started iterating) frees itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from backend.capacity.types import Pool, Slot


class LocalCapacity:
    def __init__(self, lease_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lease_s = lease_s
        self._clock = clock
        # (expert, replica or -1 for the expert's total) -> {lease id: deadline}
        self._held: dict[tuple[str, int], dict[str, float]] = {}

    def _held_on(self, key: tuple[str, int], cap: int, now: float) -> dict[str, float]:
        """The leases held on ``key``; expired ones are dropped when they would block
        (at ``cap``), so a normal acquisition costs no scan of the held leases."""
        leases = self._held.setdefault(key, {})
        if len(leases) >= cap:
            for lease in [k for k, deadline in leases.items() if deadline <= now]:
                del leases[lease]
        return leases

    async def acquire(self, pools: Sequence[Pool], lease: str) -> Slot | None:
        now = self._clock()
        member = f"{lease}:{uuid.uuid4().hex[:8]}"
        for pool in pools:
            total = self._held_on((pool.expert, -1), pool.capacity, now)
            if len(total) >= pool.capacity:
                continue
            replica: int | None = None
            if pool.replicas:
                loads = [(len(self._held_on((pool.expert, i), cap, now)), i) for i, cap in enumerate(pool.replicas)]
                free = [(load, i) for load, i in loads if load < pool.replicas[i]]
                if not free:
                    continue
                replica = min(free)[1]
                self._held[(pool.expert, replica)][member] = now + self._lease_s
            total[member] = now + self._lease_s
            return Slot(pool.expert, member, replica)
        return None

    async def release(self, slot: Slot) -> None:
        self._held.get((slot.expert, -1), {}).pop(slot.lease, None)
        if slot.replica is not None:
            self._held.get((slot.expert, slot.replica), {}).pop(slot.lease, None)

    async def in_flight(self, experts: Sequence[str]) -> dict[str, int]:
        now = self._clock()
        counts = {name: len(self._held_on((name, -1), 0, now)) for name in experts}
        return {name: n for name, n in counts.items() if n}
