"""GET /api/v1/admin/experts/breakers: each expert's circuit breaker in this process."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import AdminDep, ExpertsDep
from backend.api.schemas.breakers import BreakerOut, BreakersOut

routes = APIRouter(prefix="/api/v1/admin", tags=["resilience"])


@routes.get("/experts/breakers", response_model=BreakersOut, operation_id="listExpertBreakers")
async def list_breakers(
    _: AdminDep,
    experts: ExpertsDep,
) -> BreakersOut:
    return BreakersOut(breakers=[BreakerOut.of(s) for s in experts.breakers()])
