"""/api/v1/admin/quotas: list and set quota policies (admin only, audited)."""

from __future__ import annotations

import math
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from backend.api.deps import AdminDep, AuditDep, DbDep, PrincipalDep, QuotaDep
from backend.audit.types import Actor
from backend.quota.policies import PolicyChange, QuotaPolicies, StoredPolicy

routes = APIRouter(prefix="/api/v1/admin", tags=["quotas"])
me_routes = APIRouter(prefix="/api/v1/me", tags=["quotas"])


class QuotaPolicyIn(BaseModel):
    scope: Literal["user", "team", "global"]
    name: str = Field(default="*", min_length=1, max_length=320, description="email, team name, or * for global")
    rpm: int | None = Field(default=None, ge=0, description="0 clears the limit")
    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    on_limit: Literal["reject", "degrade"] | None = None


class QuotaPolicyOut(BaseModel):
    scope: str
    name: str
    subject: str
    rpm: int | None
    tokens_per_day: int | None
    tokens_per_month: int | None
    on_limit: str

    @classmethod
    def of(cls, p: StoredPolicy) -> QuotaPolicyOut:
        q = p.policy
        return cls(
            scope=p.scope,
            name=p.name,
            subject=p.subject,
            rpm=q.rpm,
            tokens_per_day=q.tokens_per_day,
            tokens_per_month=q.tokens_per_month,
            on_limit=q.on_limit,
        )


@routes.get("/quotas", response_model=list[QuotaPolicyOut], operation_id="listQuotaPolicies")
async def list_quotas(_: AdminDep, db: DbDep) -> list[QuotaPolicyOut]:
    async with db.session() as session:
        return [QuotaPolicyOut.of(p) for p in await QuotaPolicies(session).all()]


@routes.put("/quotas", response_model=QuotaPolicyOut, operation_id="setQuotaPolicy")
async def set_quota(
    body: QuotaPolicyIn, admin: AdminDep, quota: QuotaDep, db: DbDep, audit: AuditDep
) -> QuotaPolicyOut:
    change = PolicyChange(body.rpm, body.tokens_per_day, body.tokens_per_month, body.on_limit)
    async with db.transaction() as session:
        stored = await QuotaPolicies(session, audit).set(Actor.of(admin), body.scope, body.name, change)
    if quota is not None:  # after the commit: no process may cache the old row anew
        await quota.policies_changed()
    return QuotaPolicyOut.of(stored)


class LimitUsageOut(BaseModel):
    subject: str
    limit: str  # requests_per_minute | tokens_per_day | tokens_per_month
    max: int
    remaining: int
    reset_s: int
    on_limit: str


class MyUsageOut(BaseModel):
    limits: list[LimitUsageOut]


@me_routes.get("/usage", response_model=MyUsageOut, operation_id="getMyUsage")
async def my_usage(principal: PrincipalDep, quota: QuotaDep) -> MyUsageOut:
    """The caller's effective limits (user, team, global) and what is left under each."""
    if quota is None:
        return MyUsageOut(limits=[])
    limits, headroom = await quota.usage(principal)
    on_limit = {limit.subject: limit.policy.on_limit for limit in limits}
    return MyUsageOut(
        limits=[
            LimitUsageOut(
                subject=h.subject,
                limit=h.kind.value,
                max=h.limit,
                remaining=max(0, h.remaining),
                reset_s=math.ceil(h.reset_s),
                on_limit=on_limit[h.subject],
            )
            for h in headroom
        ]
    )
