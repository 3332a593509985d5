"""Quota arithmetic and the in-process limiter (hermetic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backend.quota.bucket import Bucket, refill, retry_after, take
from backend.quota.errors import QuotaUnavailable
from backend.quota.failsafe import FailSafeLimiter
from backend.quota.limiter import MemoryLimiter
from backend.quota.types import Admission, Limit, LimitKind, QuotaPolicy, Window

WINDOW = Window.at(datetime(2026, 11, 23, 23, 0, tzinfo=UTC))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_starts_full_refills_smoothly_and_caps() -> None:
    b = refill(None, 60, 100.0)
    assert b == Bucket(60.0, 100.0)
    for _ in range(60):
        b = take(refill(b, 60, 100.0))
    assert b.tokens == 0.0
    assert retry_after(b, 60) == pytest.approx(1.0)  # 60/min = one per second
    assert refill(b, 60, 100.5).tokens == pytest.approx(0.5)
    assert retry_after(refill(b, 60, 100.5), 60) == pytest.approx(0.5)
    assert refill(b, 60, 10_000.0).tokens == 60.0  # never above capacity
    assert refill(Bucket(3.0, 50.0), 60, 40.0).tokens == 3.0  # a clock step back adds nothing


def test_window_names_and_resets() -> None:
    w = Window.at(datetime(2026, 12, 31, 23, 59, 0, tzinfo=UTC))
    assert (w.day, w.month, w.day_reset_s, w.month_reset_s) == ("2026-12-31", "2026-12", 60, 60)
    assert WINDOW.day_reset_s == 3600


async def test_rpm_admits_exactly_the_burst_then_refuses_with_retry_after() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    limits = [Limit("user:1", QuotaPolicy(rpm=3))]
    results = [await limiter.admit(f"r{i}", limits, 10, WINDOW) for i in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    refused = results[3]
    assert refused.subject == "user:1" and refused.kind is LimitKind.RPM
    assert refused.retry_after_s == pytest.approx(20.0)  # 3/min: one token every 20 s
    clock.now = 20.0
    assert (await limiter.admit("r9", limits, 10, WINDOW)).allowed


async def test_the_tightest_subject_refuses_and_nothing_is_charged_on_refusal() -> None:
    limiter = MemoryLimiter(Clock())
    user = Limit("user:1", QuotaPolicy(tokens_per_day=1000))
    team = Limit("team:legal", QuotaPolicy(tokens_per_day=150, on_limit="degrade"))
    assert (await limiter.admit("a", [user, team], 100, WINDOW)).allowed
    refused = await limiter.admit("b", [user, team], 100, WINDOW)
    assert not refused.allowed and refused.subject == "team:legal"
    assert refused.kind is LimitKind.TOKENS_PER_DAY and refused.on_limit == "degrade"
    assert refused.retry_after_s == WINDOW.day_reset_s
    assert limiter.used("user:1", WINDOW) == (100, 0)  # the refused request left no trace


async def test_retry_is_not_counted_twice_and_settle_corrects_once() -> None:
    limiter = MemoryLimiter(Clock())
    limits = [Limit("user:1", QuotaPolicy(rpm=10, tokens_per_day=1000, tokens_per_month=5000))]
    first = await limiter.admit("req-1", limits, 200, WINDOW)
    assert first.allowed and not first.replay
    assert {(h.kind, h.remaining) for h in first.headroom} == {
        (LimitKind.RPM, 9),
        (LimitKind.TOKENS_PER_DAY, 800),
        (LimitKind.TOKENS_PER_MONTH, 4800),
    }
    again = await limiter.admit("req-1", limits, 200, WINDOW)
    assert again.allowed and again.replay
    assert limiter.used("user:1", WINDOW) == (200, 200)
    await limiter.settle("req-1", limits, 200, 57, WINDOW)
    await limiter.settle("req-1", limits, 200, 57, WINDOW)
    assert limiter.used("user:1", WINDOW) == (57, 57)


def test_policy_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="rpm must be >= 1"):
        QuotaPolicy(rpm=0)


class Broken:
    async def admit(self, *_: object) -> Admission:
        raise ConnectionError("store down")

    async def settle(self, *_: object) -> None:
        raise ConnectionError("store down")

    async def peek(self, *_: object) -> tuple[()]:
        raise ConnectionError("store down")


async def test_fail_open_serves_uncounted_and_fail_closed_is_503() -> None:
    limits = [Limit("user:1", QuotaPolicy(rpm=1))]
    served = await FailSafeLimiter(Broken(), "open").admit("r", limits, 1, WINDOW)
    assert served.allowed and not served.store_ok
    with pytest.raises(QuotaUnavailable) as info:
        await FailSafeLimiter(Broken(), "closed").admit("r", limits, 1, WINDOW)
    assert info.value.status == 503 and info.value.code == "quota_unavailable"
    await FailSafeLimiter(Broken(), "closed").settle("r", limits, 1, 2, WINDOW)  # never raises
    assert await FailSafeLimiter(Broken(), "closed").peek(limits, WINDOW) == ()
