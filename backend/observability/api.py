"""GET /metrics: the Prometheus exposition of this process's Metrics.

Unauthenticated like /healthz: scrape it on the internal network and keep it off the
public ingress (the chart's Ingress routes only /v1, /api and the UI).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from backend.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/metrics", operation_id="metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    container = getattr(request.app.state, "container", None)
    if container is None:
        return Response(b"", status_code=503, media_type=CONTENT_TYPE)
    return Response(container.metrics.render(), media_type=CONTENT_TYPE)
