"""Liveness and readiness."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and, if used, the local LLM server does."""
    container = getattr(request.app.state, "container", None)
    checks: dict[str, str] = {}
    if container is None:
        return JSONResponse({"status": "starting", "checks": checks}, status_code=503)
    try:
        await container.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    checks["router"] = container.router.version
    if container.local_llm is not None:
        ok = await anyio.to_thread.run_sync(container.local_llm.healthy)
        checks["local_llm"] = "ok" if ok else "down"
    ready = checks["database"] == "ok" and checks.get("local_llm", "ok") == "ok"
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
