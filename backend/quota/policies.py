"""Quota policies in SQL: setting them (audited) and resolving a caller's limits.

Flushes, never commits (the request or CLI boundary commits). Every path that changes a
policy (CLI, admin API) goes through :meth:`QuotaPolicies.set`, which appends the audit
event as its last write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.models import QuotaPolicyRow, Team, User, utcnow
from backend.errors import BadRequest, NotFound
from backend.principal import Principal
from backend.quota.types import Limit, OnLimit, QuotaPolicy

Scope = Literal["user", "team", "global"]
QUOTA_SET = "quota.set"
GLOBAL_NAME = "*"


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """What to change; None leaves a field as it is, 0 clears a limit (unlimited)."""

    rpm: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    on_limit: OnLimit | None = None


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    scope: Scope
    name: str
    policy: QuotaPolicy

    @property
    def subject(self) -> str:
        return subject_of(self.scope, self.name)


def subject_of(scope: Scope, name: str) -> str:
    """The limiter key: ``user:EMAIL``, ``team:NAME`` or ``global``."""
    return "global" if scope == "global" else f"{scope}:{name}"


def _policy(row: QuotaPolicyRow) -> QuotaPolicy:
    on_limit: OnLimit = "degrade" if row.on_limit == "degrade" else "reject"
    return QuotaPolicy(row.rpm, row.tokens_per_day, row.tokens_per_month, on_limit)


def _value(current: int | None, change: int | None, field: str) -> int | None:
    if change is None:
        return current
    if change < 0:
        raise BadRequest(f"{field} must be >= 0 (0 = unlimited)", param=field)
    return change or None


class QuotaPolicies:
    def __init__(self, session: AsyncSession, trail: AuditTrail | None = None) -> None:
        self._session = session
        self._trail = trail

    async def _check_subject(self, scope: Scope, name: str) -> str:
        if scope == "global":
            return GLOBAL_NAME
        if scope == "user":
            email = name.strip().lower()
            if await self._session.scalar(select(User.id).where(User.email == email)) is None:
                raise NotFound(f"no user {email!r}", param="user")
            return email
        if await self._session.scalar(select(Team.id).where(Team.name == name)) is None:
            raise NotFound(f"no team {name!r}", param="team")
        return name

    async def set(self, actor: Actor, scope: Scope, name: str, change: PolicyChange) -> StoredPolicy:
        """Create or update one policy; audited. Raises NotFound, BadRequest."""
        if self._trail is None:
            raise RuntimeError("QuotaPolicies.set needs the audit trail")
        name = await self._check_subject(scope, name)
        row = await self._session.scalar(
            select(QuotaPolicyRow).where(QuotaPolicyRow.scope == scope, QuotaPolicyRow.name == name)
        )
        before = _policy(row) if row is not None else None
        if row is None:
            row = QuotaPolicyRow(scope=scope, name=name, on_limit="reject")
            self._session.add(row)
        row.rpm = _value(row.rpm, change.rpm, "rpm")
        row.tokens_per_day = _value(row.tokens_per_day, change.tokens_per_day, "tokens_per_day")
        row.tokens_per_month = _value(row.tokens_per_month, change.tokens_per_month, "tokens_per_month")
        if change.on_limit is not None:
            row.on_limit = change.on_limit
        row.updated_by = actor.email or ""
        row.updated_at = utcnow()
        await self._session.flush()
        stored = StoredPolicy(scope, name, _policy(row))
        await self._trail.append(
            self._session,
            AuditEntry(
                action=QUOTA_SET,
                outcome=Outcome.OK,
                actor=actor,
                status=200,
                payload={
                    "scope": scope,
                    "name": name,
                    "before": _describe(before),
                    "after": _describe(stored.policy),
                },
            ),
        )
        return stored

    async def all(self) -> list[StoredPolicy]:
        rows = await self._session.scalars(select(QuotaPolicyRow).order_by(QuotaPolicyRow.scope, QuotaPolicyRow.name))
        return [StoredPolicy(_scope(r.scope), r.name, _policy(r)) for r in rows]

    async def limits_for(self, principal: Principal) -> list[Limit]:
        """The caller's limits, most specific first: user, team, global (those set)."""
        wanted: list[tuple[Scope, str]] = [("user", principal.email.lower())]
        if principal.team:
            wanted.append(("team", principal.team))
        wanted.append(("global", GLOBAL_NAME))
        rows = {
            (r.scope, r.name): r
            for r in await self._session.scalars(
                select(QuotaPolicyRow).where(QuotaPolicyRow.name.in_([n for _, n in wanted]))
            )
        }
        return [
            Limit(subject_of(scope, name), _policy(rows[(scope, name)]))
            for scope, name in wanted
            if (scope, name) in rows
        ]


def _scope(value: str) -> Scope:
    if value == "user":
        return "user"
    if value == "team":
        return "team"
    return "global"


def _describe(policy: QuotaPolicy | None) -> dict[str, object] | None:
    if policy is None:
        return None
    return {
        "rpm": policy.rpm,
        "tokens_per_day": policy.tokens_per_day,
        "tokens_per_month": policy.tokens_per_month,
        "on_limit": policy.on_limit,
    }
