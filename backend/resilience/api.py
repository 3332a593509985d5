"""GET /api/v1/admin/experts/breakers: each expert's circuit breaker in this process."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from backend.container import Container
from backend.deps import get_container, require_admin
from backend.identity.types import Principal
from backend.resilience.schemas import BreakerOut, BreakersOut

router = APIRouter(prefix="/api/v1/admin", tags=["resilience"])


@router.get("/experts/breakers", response_model=BreakersOut, operation_id="listExpertBreakers")
async def list_breakers(
    _: Annotated[Principal, Depends(require_admin)],
    container: Annotated[Container, Depends(get_container)],
) -> BreakersOut:
    return BreakersOut(breakers=[BreakerOut.of(s) for s in container.experts.breakers()])
