"""What a store failure means: fail-open (serve uncounted, log loudly) or fail-closed (503).

Never a crash: any error from the store becomes one of those two outcomes. When the
store comes back, the next call uses it again (nothing is cached here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from backend.quota.errors import QuotaUnavailable
from backend.quota.limiter import QuotaLimiter
from backend.quota.types import Admission, Headroom, Limit, Window

log = logging.getLogger(__name__)

OnStoreError = Literal["open", "closed"]


class FailSafeLimiter:
    def __init__(self, inner: QuotaLimiter, on_error: OnStoreError) -> None:
        self._inner = inner
        self._on_error = on_error

    async def admit(self, request_id: str, limits: Sequence[Limit], estimate: int, window: Window) -> Admission:
        try:
            return await self._inner.admit(request_id, limits, estimate, window)
        except Exception as exc:  # the store's errors vary (connection, timeout, script)
            if self._on_error == "closed":
                log.error("quota store failed, refusing request %s (fail-closed): %s", request_id, exc)
                raise QuotaUnavailable("quota store unavailable; try again shortly") from exc
            log.error("quota store failed, serving request %s UNCOUNTED (fail-open): %s", request_id, exc)
            return Admission(True, store_ok=False)

    async def settle(
        self, request_id: str, limits: Sequence[Limit], estimate: int, actual: int, window: Window
    ) -> None:
        try:
            await self._inner.settle(request_id, limits, estimate, actual, window)
        except Exception as exc:  # settling is best effort: the answer was already served
            log.error("quota store failed settling request %s: %s", request_id, exc)

    async def peek(self, limits: Sequence[Limit], window: Window) -> tuple[Headroom, ...]:
        try:
            return await self._inner.peek(limits, window)
        except Exception as exc:  # a read for display: report nothing rather than fail
            log.error("quota store failed reading usage: %s", exc)
            return ()
