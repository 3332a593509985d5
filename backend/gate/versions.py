"""Promote, roll back and shadow gate versions, each change with its one audit event.

The admin API and the CLI both call :class:`GateVersions`, so the same change is
audited the same way whichever channel made it:

=====================  ==========================================  ===================
action                 payload                                     change
=====================  ==========================================  ===================
``router.promoted``    ``{"version": str, "previous": str|None}``  promote VERSION
``router.rolled_back`` ``{"version": str, "previous": str|None}``  rollback (version:
                                                                   the one re-activated)
``router.shadow``      ``{"version": str|None}``                   shadow VERSION/off
=====================  ==========================================  ===================

The store's files and pointer change first (in a worker thread: they are synchronous);
the event is then appended in the caller's session, which commits it. A change the
store refuses (ArtifactError) records nothing.
"""

from __future__ import annotations

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from router.artifacts import ArtifactStore

ROUTER_PROMOTED = "router.promoted"
ROUTER_ROLLED_BACK = "router.rolled_back"
ROUTER_SHADOW = "router.shadow"


class GateVersions:
    """Changes which gate version is active or in shadow. Flushes, never commits."""

    def __init__(self, session: AsyncSession, store: ArtifactStore, trail: AuditTrail) -> None:
        self._session = session
        self._store = store
        self._trail = trail

    async def promote(self, actor: Actor, version: str) -> None:
        """Make ``version`` the active gate. Raises ArtifactError when there is no such
        version or it does not load."""

        def change() -> str | None:
            previous = self._store.active()
            self._store.promote(version)
            return previous

        previous = await anyio.to_thread.run_sync(change)
        await self._record(actor, ROUTER_PROMOTED, {"version": version, "previous": previous})

    async def rollback(self, actor: Actor) -> str:
        """Re-activate the version promoted before the current one; returns it. Raises
        ArtifactError when fewer than two promotions are recorded or it does not load."""

        def change() -> tuple[str, str | None]:
            previous = self._store.active()
            return self._store.rollback(), previous

        target, previous = await anyio.to_thread.run_sync(change)
        await self._record(actor, ROUTER_ROLLED_BACK, {"version": target, "previous": previous})
        return target

    async def set_shadow(self, actor: Actor, version: str | None) -> None:
        """Run ``version`` in shadow beside the active gate (None: stop). Raises
        ArtifactError when ``version`` does not load."""
        await anyio.to_thread.run_sync(self._store.set_shadow, version)
        await self._record(actor, ROUTER_SHADOW, {"version": version})

    async def _record(self, actor: Actor, action: str, payload: dict[str, object]) -> None:
        entry = AuditEntry(action=action, outcome=Outcome.OK, actor=actor, status=200, payload=payload)
        await self._trail.append(self._session, entry)
