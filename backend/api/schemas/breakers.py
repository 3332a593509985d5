"""API schemas for /api/v1/admin/experts/breakers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from experts.resilience import BreakerSnapshot


class BreakerOut(BaseModel):
    expert: str
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    failure_threshold: int
    cooldown_s: float
    retry_in_s: float
    opened_total: int

    @classmethod
    def of(cls, snap: BreakerSnapshot) -> BreakerOut:
        return cls(
            expert=snap.expert,
            state=snap.state.value,
            consecutive_failures=snap.consecutive_failures,
            failure_threshold=snap.failure_threshold,
            cooldown_s=snap.cooldown_s,
            retry_in_s=snap.retry_in_s,
            opened_total=snap.opened_total,
        )


class BreakersOut(BaseModel):
    process_local: bool = True  # each API process keeps its own breakers
    breakers: list[BreakerOut]
