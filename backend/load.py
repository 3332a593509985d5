"""In-flight requests per expert: what the router's capacity rule reads.

The embedded default counts in process. A Redis implementation with the same
interface shares the counts between API processes (see backend.redis_load).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class LoadTracker(Protocol):
    async def snapshot(self) -> dict[str, int]:
        """Current in-flight count per expert (missing = 0)."""
        ...

    def hold(self, expert: str) -> AbstractAsyncContextManager[None]:
        """Async context manager counting one in-flight request on ``expert``."""
        ...


class LocalLoadTracker:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = asyncio.Lock()

    async def snapshot(self) -> dict[str, int]:
        return {k: v for k, v in self._counts.items() if v > 0}

    @asynccontextmanager
    async def hold(self, expert: str) -> AsyncIterator[None]:
        self._counts[expert] += 1
        try:
            yield
        finally:
            self._counts[expert] -= 1
