"""Liveness and readiness."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

routes = APIRouter(tags=["health"])


@routes.get("/healthz", operation_id="healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@routes.get("/readyz", operation_id="readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and, if used, the local LLM server does."""
    runtime = getattr(request.app.state, "runtime", None)
    checks: dict[str, str] = {}
    if runtime is None:
        return JSONResponse({"status": "starting", "checks": checks}, status_code=503)
    try:
        await runtime.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    checks["router"] = runtime.gate.version
    if runtime.local_llm is not None:
        ok = await anyio.to_thread.run_sync(runtime.local_llm.healthy)
        checks["local_llm"] = "ok" if ok else "down"
    ready = checks["database"] == "ok" and checks.get("local_llm", "ok") == "ok"
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
