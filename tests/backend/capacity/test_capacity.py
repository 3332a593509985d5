"""The in-process capacity store and capacity admission with the router's overflow rule."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from backend.capacity.local import LocalCapacity
from backend.capacity.service import CapacityService
from backend.capacity.types import CapacityUnavailable, ExpertAtCapacity, Pool, Slot
from router.policy import DecisionPolicy, PolicyConfig
from router.types import Reason, RoutingDecision

POOLS = {
    "code": Pool("code", 2),
    "legal": Pool("legal", 1),
    "support": Pool("support", 2),
    "general": Pool("general", 3),
}
POLICY = DecisionPolicy(PolicyConfig(top_k=2, overflow_min_prob=0.2), {})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def decision(expert: str, reason: Reason = Reason.ROUTED, **probs: float) -> RoutingDecision:
    top = tuple(sorted(probs, key=lambda n: -probs[n])[:2])
    return RoutingDecision(expert, probs.get(expert, 0.0), reason, probs, top, "v1", 0.8)


def service(store: LocalCapacity | None = None, on_store_error: str = "open") -> CapacityService:
    return CapacityService(
        store or LocalCapacity(),
        POOLS,
        lambda: POLICY,
        on_store_error=on_store_error,  # type: ignore[arg-type]
        retry_after_s=2.0,
    )


async def test_concurrent_acquirers_get_exactly_the_capacity() -> None:
    store = LocalCapacity()
    pool = [Pool("code", 5)]
    slots = await asyncio.gather(*(store.acquire(pool, f"r{i}") for i in range(50)))
    held = [s for s in slots if s is not None]
    assert len(held) == 5
    assert len({s.lease for s in held}) == 5
    assert await store.in_flight(["code", "legal"]) == {"code": 5}
    await store.release(held[0])
    await store.release(held[0])  # a second release changes nothing
    assert await store.in_flight(["code"]) == {"code": 4}
    assert await store.acquire(pool, "late") is not None
    assert await store.acquire(pool, "later") is None


async def test_first_pool_with_room_wins() -> None:
    store = LocalCapacity()
    pools = [Pool("legal", 1), Pool("general", 2)]
    first = await store.acquire(pools, "a")
    second = await store.acquire(pools, "b")
    third = await store.acquire(pools, "c")
    assert [s.expert if s else None for s in (first, second, third)] == ["legal", "general", "general"]
    assert await store.acquire(pools, "d") is None


async def test_replicas_least_loaded_with_their_own_and_the_total_capacity() -> None:
    store = LocalCapacity()
    pool = [Pool("code", 4, replicas=(1, 3))]
    slots = [await store.acquire(pool, f"r{i}") for i in range(5)]
    held = [s for s in slots if s is not None]
    # least-loaded first (ties to the lower index): 0, 1, then replica 0 is full -> 1, 1
    assert [s.replica for s in held] == [0, 1, 1, 1]
    assert slots[4] is None  # the expert's total (4) is reached before replica 1's cap
    await store.release(held[0])
    again = await store.acquire(pool, "again")
    assert again is not None and again.replica == 0


async def test_a_slot_never_released_expires_after_its_lease() -> None:
    clock = Clock()
    store = LocalCapacity(lease_s=30, clock=clock)
    pool = [Pool("legal", 1)]
    assert await store.acquire(pool, "crashed") is not None
    clock.now += 29
    assert await store.acquire(pool, "waiting") is None
    clock.now += 2
    assert await store.acquire(pool, "after lease") is not None


async def test_admit_keeps_the_decision_when_the_expert_has_room() -> None:
    capacity = service()
    d = decision("legal", legal=0.7, support=0.25, general=0.05)
    admitted, slot = await capacity.admit(d, "r1")
    assert admitted is d and slot is not None and slot.expert == "legal"


async def test_full_expert_overflows_to_the_next_top_k_expert() -> None:
    capacity = service()
    d = decision("legal", legal=0.7, support=0.25, general=0.05)
    await capacity.admit(d, "r1")
    admitted, slot = await capacity.admit(d, "r2")
    assert (admitted.expert, admitted.reason) == ("support", Reason.OVERFLOW)
    assert admitted.detail == "legal at capacity"
    assert admitted.confidence == pytest.approx(0.25)
    assert slot is not None and slot.expert == "support"


async def test_overflow_skips_an_unlikely_expert_and_ends_at_the_generalist() -> None:
    capacity = service()
    d = decision("legal", legal=0.85, code=0.1, general=0.05)  # code under overflow_min_prob
    await capacity.admit(d, "r1")
    admitted, slot = await capacity.admit(d, "r2")
    assert (admitted.expert, admitted.reason) == ("general", Reason.OVERFLOW)
    assert slot is not None and slot.expert == "general"


async def test_every_candidate_full_is_a_503_with_retry_after() -> None:
    capacity = service()
    d = decision("legal", legal=0.7, support=0.25, general=0.05)
    outcomes = [await capacity.admit(d, f"r{i}") for i in range(6)]  # 1 legal + 2 support + 3 general
    assert [o[0].expert for o in outcomes] == ["legal", "support", "support", "general", "general", "general"]
    assert outcomes[3][0].detail == "legal at capacity; support at capacity"
    with pytest.raises(ExpertAtCapacity) as info:
        await capacity.admit(d, "r7")
    assert info.value.status == 503 and info.value.code == "expert_at_capacity"
    assert info.value.retry_after_s == 2.0
    assert "'legal' expert is at capacity" in info.value.message
    assert "support, general" in info.value.message
    await capacity.release(outcomes[0][1])
    admitted, _ = await capacity.admit(d, "r8")
    assert admitted.expert == "legal" and admitted.reason is Reason.ROUTED


async def test_a_requested_expert_is_never_substituted() -> None:
    capacity = service()
    d = decision("legal", Reason.REQUESTED, legal=1.0)
    await capacity.admit(d, "r1")
    with pytest.raises(ExpertAtCapacity) as info:
        await capacity.admit(d, "r2")
    assert "overflow" not in info.value.message and "legal" in info.value.message


class BrokenStore:
    """A store whose backend is down (what a Redis outage looks like to the service)."""

    async def acquire(self, pools: Sequence[Pool], lease: str) -> Slot | None:
        raise ConnectionError("store down")

    async def release(self, slot: Slot) -> None:
        raise ConnectionError("store down")

    async def in_flight(self, experts: Sequence[str]) -> dict[str, int]:
        raise ConnectionError("store down")


async def test_store_errors_fail_open_or_closed_as_configured(caplog: pytest.LogCaptureFixture) -> None:
    d = decision("legal", legal=0.9, general=0.1)
    opened = CapacityService(BrokenStore(), POOLS, lambda: POLICY, on_store_error="open")
    admitted, slot = await opened.admit(d, "r1")
    assert admitted is d and slot is None
    assert "WITHOUT A SLOT" in caplog.text
    await opened.release(Slot("legal", "x"))  # logged, never raised
    closed = CapacityService(BrokenStore(), POOLS, lambda: POLICY, on_store_error="closed")
    with pytest.raises(CapacityUnavailable) as info:
        await closed.admit(d, "r2")
    assert info.value.code == "capacity_unavailable" and info.value.status == 503
