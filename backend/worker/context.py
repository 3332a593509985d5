"""What a worker process holds: settings and lazily built, process-wide heavy parts.

Each task runs its async service call in a fresh event loop (``asyncio.run``), so the
database engine, bound to a loop, is built per task and disposed after it. The encoder
(a model) and the registry are loaded once per worker process, on first use.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from backend.db.session import Database, migrate
from backend.settings import Settings
from experts.registry import ExpertRegistry
from router.encoder import Encoder

T = TypeVar("T")


class WorkerContext:
    def __init__(self, settings: Settings, *, encoder: Encoder | None = None) -> None:
        self.settings = settings
        self._encoder = encoder
        self._registry: ExpertRegistry | None = None
        self._migrated = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.settings.resolved_database_url

    def prepare(self) -> None:
        """Data dir and schema, once per process (idempotent; ``expertgate migrate`` also does it)."""
        with self._lock:
            if not self._migrated:
                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
                migrate(self.url)
                self._migrated = True

    def registry(self) -> ExpertRegistry:
        with self._lock:
            if self._registry is None:
                self._registry = ExpertRegistry.from_yaml(self.settings.experts_file)
            return self._registry

    def encoder(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                from backend.gate.wiring import bundled_encoder

                self._encoder = bundled_encoder(self.settings, serving=False)
            return self._encoder

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        """Run ``work(db)`` to completion on a fresh loop with a fresh engine."""
        self.prepare()

        async def main() -> T:
            db = Database(self.url)
            try:
                return await work(db)
            finally:
                await db.dispose()

        return asyncio.run(main())
