"""GET /metrics: the Prometheus exposition of this process's Metrics.

Unauthenticated like /healthz: scrape it on the internal network and keep it off the
public ingress (the chart's Ingress routes only /v1, /api and the UI).
"""

from __future__ import annotations

import logging

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from backend.observability.metrics import CONTENT_TYPE
from backend.review.service import ReviewService
from backend.runtime import Runtime

log = logging.getLogger(__name__)
routes = APIRouter(tags=["health"])

CELERY_QUEUE = "celery"  # Celery's default queue: a Redis list of that name on the broker
PROBE_TIMEOUT_S = 1.0


async def _refresh_load(runtime: Runtime) -> None:
    """Read the gauges that live in shared stores (capacity slots, the broker queue).

    A store that does not answer within a second leaves its gauges as they were: a
    scrape never fails or hangs because Redis is away."""
    in_flight: dict[str, int] = {}
    queues: dict[str, int] = {}
    with anyio.move_on_after(PROBE_TIMEOUT_S):
        try:
            held = await runtime.capacity.in_flight()
            in_flight = {name: held.get(name, 0) for name in runtime.registry.names}
            if runtime.redis is not None:
                queues[CELERY_QUEUE] = int(await runtime.redis.llen(CELERY_QUEUE))
        except Exception as exc:  # the store's errors vary; the scrape goes on
            log.warning("metrics: could not read shared load: %s", exc)
    runtime.metrics.set_load(in_flight, queues)


async def _refresh_reviews(runtime: Runtime) -> None:
    """The review queue's depth and ages, from SQL (left as they were if it is slow or down)."""
    with anyio.move_on_after(PROBE_TIMEOUT_S):
        try:
            async with runtime.db.session() as session:
                stats = await ReviewService(session, runtime.audit, runtime.registry).stats()
        except Exception as exc:  # the database's errors vary; the scrape goes on
            log.warning("metrics: could not read the review queue: %s", exc)
            return
        runtime.metrics.set_reviews(runtime.registry.names, stats)


@routes.get("/metrics", operation_id="metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return Response(b"", status_code=503, media_type=CONTENT_TYPE)
    await _refresh_load(runtime)
    await _refresh_reviews(runtime)
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)
