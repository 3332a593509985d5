"""The limiter interface and the in-process implementation (embedded default).

Admission is all-or-nothing across the request's limits (user, team, global): either
every bucket and budget is charged, or none is. The same ``request_id`` is charged at
most once (a retried request is a replay), and settled at most once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from backend.quota.bucket import Bucket, refill, retry_after, take
from backend.quota.types import Admission, Headroom, Limit, LimitKind, Window, headroom_of


class QuotaLimiter(Protocol):
    async def admit(self, request_id: str, limits: Sequence[Limit], estimate: int, window: Window) -> Admission:
        """Charge one request and ``estimate`` tokens to every limit, or refuse."""
        ...

    async def settle(
        self, request_id: str, limits: Sequence[Limit], estimate: int, actual: int, window: Window
    ) -> None:
        """Correct the token budgets from the estimate to the real usage (once)."""
        ...

    async def peek(self, limits: Sequence[Limit], window: Window) -> tuple[Headroom, ...]:
        """What is left under each limit now, charging nothing."""
        ...


class MemoryLimiter:
    """Exact within one process (one event loop: no awaits inside a decision)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, remember: int = 100_000) -> None:
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}
        self._used: dict[tuple[str, str], int] = {}
        self._seen: OrderedDict[str, bool] = OrderedDict()  # request id -> settled
        self._remember = remember

    async def admit(self, request_id: str, limits: Sequence[Limit], estimate: int, window: Window) -> Admission:
        if request_id in self._seen:
            return Admission(True, replay=True)
        now = self._clock()
        buckets: dict[str, Bucket] = {}
        headroom: list[Headroom] = []
        for limit in limits:
            p = limit.policy
            if p.rpm is not None:
                bucket = refill(self._buckets.get(limit.subject), p.rpm, now)
                if bucket.tokens < 1.0:
                    return self._refused(limit, LimitKind.RPM, retry_after(bucket, p.rpm))
                buckets[limit.subject] = bucket
                headroom.append(Headroom(limit.subject, LimitKind.RPM, p.rpm, int(bucket.tokens - 1), 60.0))
            for kind, cap, key, reset in (
                (LimitKind.TOKENS_PER_DAY, p.tokens_per_day, "d:" + window.day, window.day_reset_s),
                (LimitKind.TOKENS_PER_MONTH, p.tokens_per_month, "m:" + window.month, window.month_reset_s),
            ):
                if cap is None:
                    continue
                used = self._used.get((limit.subject, key), 0)
                if used + estimate > cap:
                    return self._refused(limit, kind, float(reset))
                headroom.append(Headroom(limit.subject, kind, cap, cap - used - estimate, float(reset)))
        for subject, bucket in buckets.items():
            self._buckets[subject] = take(bucket)
        for limit in limits:
            self._charge(limit, window, estimate)
        self._seen[request_id] = False
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return Admission(True, tuple(headroom))

    def _refused(self, limit: Limit, kind: LimitKind, after: float) -> Admission:
        return Admission(False, subject=limit.subject, kind=kind, retry_after_s=after, on_limit=limit.policy.on_limit)

    def _charge(self, limit: Limit, window: Window, tokens: int) -> None:
        if limit.policy.tokens_per_day is not None:
            key = (limit.subject, "d:" + window.day)
            self._used[key] = self._used.get(key, 0) + tokens
        if limit.policy.tokens_per_month is not None:
            key = (limit.subject, "m:" + window.month)
            self._used[key] = self._used.get(key, 0) + tokens

    async def settle(
        self, request_id: str, limits: Sequence[Limit], estimate: int, actual: int, window: Window
    ) -> None:
        if self._seen.get(request_id) is not False:
            return  # unknown (never admitted here) or settled already
        self._seen[request_id] = True
        for limit in limits:
            self._charge(limit, window, actual - estimate)

    async def peek(self, limits: Sequence[Limit], window: Window) -> tuple[Headroom, ...]:
        now = self._clock()
        out: list[Headroom] = []
        for limit in limits:
            rpm = limit.policy.rpm
            left = int(refill(self._buckets.get(limit.subject), rpm, now).tokens) if rpm is not None else 0
            out += headroom_of(limit, window, left, *self.used(limit.subject, window))
        return tuple(out)

    def used(self, subject: str, window: Window) -> tuple[int, int]:
        """Tokens counted for ``subject`` today and this month."""
        return (
            self._used.get((subject, "d:" + window.day), 0),
            self._used.get((subject, "m:" + window.month), 0),
        )
