"""GET /api/v1/admin/stats: the console dashboard's figures (auditors and admins).

A thin adapter over :class:`backend.audit.stats.AuditStats`; the window rules (default
last 24 hours, at most 31 days and 500 buckets) live there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import AuditorDep, ChainerDep, DbDep, ExpertsDep, RegistryDep, SettingsDep
from backend.audit.stats import AuditStats, DashboardStats, Prices, resolve_window

routes = APIRouter(prefix="/api/v1/admin", tags=["audit"])


@routes.get("/stats", response_model=DashboardStats, operation_id="getDashboardStats")
async def dashboard_stats(
    _: AuditorDep,
    settings: SettingsDep,
    db: DbDep,
    chainer: ChainerDep,
    registry: RegistryDep,
    experts: ExpertsDep,
    since: Annotated[datetime | None, Query(description="ISO 8601; naive means UTC; default until - 24h")] = None,
    until: Annotated[datetime | None, Query(description="exclusive; default now")] = None,
    bucket: Annotated[int | None, Query(ge=60, le=86_400, description="seconds per time bucket")] = None,
) -> DashboardStats:
    """Traffic, routing, latency, usage, response-cache and breaker figures over one
    window of the trail."""
    window = resolve_window(since, until, bucket, now=datetime.now(UTC))
    prices = Prices(settings.cost_per_1k_prompt_tokens, settings.cost_per_1k_completion_tokens)
    await chainer.drain()  # count events still pending in the audit outbox too
    async with db.session() as session:
        cached = [spec.name for spec in registry if spec.cache.enabled]
        stats = AuditStats(session, registry.names, prices, cached)
        return await stats.dashboard(window, experts.breakers())
