"""Hot reload: follow the active-version pointer and swap the gate without a restart.

The pointer is the ACTIVE file, or with a database configured the artifact_pointers
row (see router.artifacts). A version whose files do not match the published checksum
yet is retried on the next poll; a database error skips one poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio
from sqlalchemy.exc import SQLAlchemyError

from backend.gate.wiring import expert_texts, make_policy
from experts.registry import ExpertRegistry
from router.artifacts import ArtifactStore
from router.errors import ArtifactError, ArtifactNotReady
from router.loading import scorer_for
from router.service import Router

log = logging.getLogger(__name__)


class GateReloader:
    """Polls the store; a new ACTIVE version is loaded off the event loop, then swapped."""

    def __init__(self, router: Router, store: ArtifactStore, registry: ExpertRegistry, interval_s: float) -> None:
        self._router = router
        self._store = store
        self._registry = registry
        self._interval_s = interval_s
        self._loaded = store.active()
        self._shadow: str | None = None

    def check(self) -> bool:
        """Swap in the active version if it changed. True when a swap happened.

        A version that fails to load is logged and skipped; the old gate keeps serving.
        """
        active = self._store.active()
        if active is None or active == self._loaded:
            return False
        try:
            gate = self._store.load(active)
            scorer = scorer_for(gate, self._router.encoder, expert_texts(self._registry))
        except ArtifactNotReady as exc:
            log.warning("gate %s not ready yet, keeping %s: %s", active, self._router.version, exc)
            return False
        except ArtifactError as exc:
            log.error("cannot activate gate %s, keeping %s: %s", active, self._router.version, exc)
            self._loaded = active
            return False
        self._router.swap(scorer, make_policy(self._registry, gate.manifest.policy))
        self._loaded = active
        log.info("router now serves gate %s", scorer.version)
        return True

    def check_shadow(self) -> None:
        """Start, change or stop the shadow gate to match the SHADOW pointer."""
        wanted = self._store.shadow()
        if wanted == self._shadow:
            return
        self._shadow = wanted
        if wanted is None:
            self._router.set_shadow(None)
            return
        try:
            gate = self._store.load(wanted)
            scorer = scorer_for(gate, self._router.encoder, expert_texts(self._registry))
        except ArtifactNotReady as exc:
            log.warning("shadow gate %s not ready yet: %s", wanted, exc)
            self._shadow = None
            return
        except ArtifactError as exc:
            log.error("cannot run gate %s in shadow: %s", wanted, exc)
            return
        self._router.set_shadow(scorer, make_policy(self._registry, gate.manifest.policy))
        log.info("gate %s runs in shadow", wanted)

    async def run(self) -> None:
        while True:
            await self._poll(self.check_shadow)
            await asyncio.sleep(self._interval_s)
            await self._poll(self.check)

    @staticmethod
    async def _poll(step: Callable[[], object]) -> None:
        try:
            await anyio.to_thread.run_sync(step)
        except SQLAlchemyError as exc:  # the pointer table is unreachable: try again next time
            log.warning("cannot read the router version pointer: %s", exc)
