"""Hot reload: follow the ACTIVE pointer and swap the gate without a restart."""

from __future__ import annotations

import asyncio
import logging

import anyio

from backend.routing.wiring import expert_texts, make_policy
from experts.registry import ExpertRegistry
from router.artifacts import ArtifactStore
from router.errors import ArtifactError
from router.gate import TrainedScorer
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
            gate = TrainedScorer.load(self._store.path(active))
            scorer = scorer_for(gate, self._router.encoder, expert_texts(self._registry))
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
            gate = TrainedScorer.load(self._store.path(wanted))
            scorer = scorer_for(gate, self._router.encoder, expert_texts(self._registry))
        except ArtifactError as exc:
            log.error("cannot run gate %s in shadow: %s", wanted, exc)
            return
        self._router.set_shadow(scorer, make_policy(self._registry, gate.manifest.policy))
        log.info("gate %s runs in shadow", wanted)

    async def run(self) -> None:
        while True:
            await anyio.to_thread.run_sync(self.check_shadow)
            await asyncio.sleep(self._interval_s)
            await anyio.to_thread.run_sync(self.check)
