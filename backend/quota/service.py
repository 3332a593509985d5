"""Admission for one request: the caller's policies (SQL, cached briefly: see
backend.quota.cache) against the limiter.

The pipeline calls :meth:`QuotaService.admit` once per request before generation, with
an estimate of the tokens the request will use, and :meth:`QuotaService.settle` once
after it with the real usage (0 when nothing was generated). Internal retries and
fallbacks happen inside one admission, so they are never counted twice; the limiter
also ignores a second admission of the same request id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from backend.db.session import Database
from backend.principal import Principal
from backend.quota.cache import PolicyCache
from backend.quota.errors import QuotaExceeded
from backend.quota.limiter import QuotaLimiter
from backend.quota.policies import QuotaPolicies
from backend.quota.types import Admission, Headroom, Limit, LimitKind, Window
from experts.types import ChatMessage

_LABEL = {
    LimitKind.RPM: "requests per minute",
    LimitKind.TOKENS_PER_DAY: "tokens per day",
    LimitKind.TOKENS_PER_MONTH: "tokens per month",
}


def estimate_tokens(messages: Sequence[ChatMessage], max_tokens: int) -> int:
    """Prompt tokens (about 4 characters each) plus the most the answer may use."""
    chars = sum(len(m.content) for m in messages)
    return math.ceil(chars / 4) + max_tokens


@dataclass(frozen=True, slots=True)
class Grant:
    """An admitted request. ``degraded``: a limit was hit and its policy says serve the
    request with the generalist instead (nothing was charged)."""

    request_id: str
    limits: tuple[Limit, ...]
    window: Window
    estimate: int
    admission: Admission
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        """``x-ratelimit-*`` headers from the tightest request and token limits."""
        out: dict[str, str] = {}
        requests = [h for h in self.admission.headroom if h.kind is LimitKind.RPM]
        tokens = [h for h in self.admission.headroom if h.kind is not LimitKind.RPM]
        for suffix, group in (("requests", requests), ("tokens", tokens)):
            if not group:
                continue
            tight: Headroom = min(group, key=lambda h: h.remaining)
            out[f"x-ratelimit-limit-{suffix}"] = str(tight.limit)
            out[f"x-ratelimit-remaining-{suffix}"] = str(max(0, tight.remaining))
            out[f"x-ratelimit-reset-{suffix}"] = f"{math.ceil(tight.reset_s)}s"
        if self.degraded:
            out["x-ratelimit-degraded"] = f"{self.admission.subject} {self.admission.kind}"
        return out


class QuotaService:
    def __init__(
        self,
        db: Database,
        limiter: QuotaLimiter,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache: PolicyCache | None = None,
    ) -> None:
        """``cache``: where the callers' policies are kept between requests (None: read
        SQL on every admission)."""
        self._db = db
        self._limiter = limiter
        self._now = now
        self._cache = cache

    async def _limits_from_sql(self, principal: Principal) -> tuple[Limit, ...]:
        async with self._db.session() as session:
            return tuple(await QuotaPolicies(session).limits_for(principal))

    async def _limits(self, principal: Principal) -> tuple[Limit, ...]:
        if self._cache is None:
            return await self._limits_from_sql(principal)
        return await self._cache.limits(principal, lambda: self._limits_from_sql(principal))

    async def policies_changed(self) -> None:
        """Call after a policy change commits: drops cached policies here, and announces
        the change to other processes when they share Redis."""
        if self._cache is not None:
            await self._cache.changed()

    async def admit(self, principal: Principal, request_id: str, estimate: int) -> Grant:
        """Admit the request or raise QuotaExceeded (429, names the limit) or
        QuotaUnavailable (503, store down and fail-closed)."""
        limits = await self._limits(principal)
        window = Window.at(self._now())
        if not limits:
            return Grant(request_id, (), window, estimate, Admission(True))
        admission = await self._limiter.admit(request_id, limits, estimate, window)
        if admission.allowed:
            return Grant(request_id, limits, window, estimate, admission)
        if admission.on_limit == "degrade":
            return Grant(request_id, (), window, estimate, admission, degraded=True)
        raise QuotaExceeded(_message(admission, limits), admission.retry_after_s)

    async def settle(self, grant: Grant, actual_tokens: int) -> None:
        """Correct the token budgets from the estimate to ``actual_tokens`` (once)."""
        if grant.limits and grant.admission.store_ok and not grant.admission.replay:
            await self._limiter.settle(grant.request_id, grant.limits, grant.estimate, actual_tokens, grant.window)

    async def usage(self, principal: Principal) -> tuple[tuple[Limit, ...], tuple[Headroom, ...]]:
        """The caller's effective limits and what is left under each (charges nothing)."""
        limits = await self._limits(principal)
        if not limits:
            return (), ()
        return limits, await self._limiter.peek(limits, Window.at(self._now()))


def _message(admission: Admission, limits: Sequence[Limit]) -> str:
    limit = next(x for x in limits if x.subject == admission.subject)
    kind = admission.kind or LimitKind.RPM
    value = {
        LimitKind.RPM: limit.policy.rpm,
        LimitKind.TOKENS_PER_DAY: limit.policy.tokens_per_day,
        LimitKind.TOKENS_PER_MONTH: limit.policy.tokens_per_month,
    }[kind]
    who = "everyone (global)" if limit.subject == "global" else limit.subject
    return (
        f"quota exceeded: {who} is limited to {value} {_LABEL[kind]}; "
        f"retry after {math.ceil(admission.retry_after_s)} s"
    )
