"""/api/v1/admin/users and /api/v1/admin/teams: list (auditors too), edit (admins, audited).

Parse, call :class:`backend.identity.users.UserAdmin`, map. Keys stay under
/api/v1/admin/keys (identity/api.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from backend.api.deps import AdminDep, AuditDep, AuditorDep, DbDep, KeyAuthDep
from backend.audit.types import Actor
from backend.identity.users import TeamInfo, UserAdmin, UserChange, UserInfo

routes = APIRouter(prefix="/api/v1/admin", tags=["identity"])

Role = Literal["user", "auditor", "reviewer", "admin"]


class UserOut(BaseModel):
    id: int
    email: str
    team: str | None
    roles: list[str]
    groups: list[str]
    disabled: bool
    active_keys: int
    created_at: datetime

    @classmethod
    def of(cls, u: UserInfo) -> UserOut:
        return cls(
            id=u.user_id,
            email=u.email,
            team=u.team,
            roles=list(u.roles),
            groups=list(u.groups),
            disabled=u.disabled,
            active_keys=u.active_keys,
            created_at=u.created_at,
        )


class UserUpdate(BaseModel):
    """Fields left out (or null) stay as they are; ``team`` "" removes the team."""

    roles: list[Role] | None = Field(default=None, min_length=1)
    groups: list[str] | None = Field(default=None, max_length=50)
    team: str | None = Field(default=None, max_length=120)
    disabled: bool | None = None


class TeamOut(BaseModel):
    id: int
    name: str
    members: int
    created_at: datetime

    @classmethod
    def of(cls, t: TeamInfo) -> TeamOut:
        return cls(id=t.team_id, name=t.name, members=t.members, created_at=t.created_at)


class TeamCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120)


@routes.get("/users", response_model=list[UserOut], operation_id="listUsers")
async def list_users(_: AuditorDep, db: DbDep, audit: AuditDep) -> list[UserOut]:
    async with db.session() as session:
        return [UserOut.of(u) for u in await UserAdmin(session, audit).users()]


@routes.patch("/users/{user_id}", response_model=UserOut, operation_id="updateUser")
async def update_user(
    user_id: int, body: UserUpdate, admin: AdminDep, keys: KeyAuthDep, db: DbDep, audit: AuditDep
) -> UserOut:
    """Change roles, groups, team or the disabled flag (a disabled user's keys fail at once)."""
    change = UserChange(
        roles=frozenset(body.roles) if body.roles is not None else None,
        groups=frozenset(body.groups) if body.groups is not None else None,
        team=body.team,
        disabled=body.disabled,
    )
    async with db.transaction() as session:
        info = await UserAdmin(session, audit).update_user(Actor.of(admin), user_id, change)
    keys.forget_user(user_id)  # committed: cached keys of this user are read afresh
    return UserOut.of(info)


@routes.get("/teams", response_model=list[TeamOut], operation_id="listTeams")
async def list_teams(_: AuditorDep, db: DbDep, audit: AuditDep) -> list[TeamOut]:
    async with db.session() as session:
        return [TeamOut.of(t) for t in await UserAdmin(session, audit).teams()]


@routes.post("/teams", response_model=TeamOut, status_code=201, operation_id="createTeam")
async def create_team(body: TeamCreate, admin: AdminDep, db: DbDep, audit: AuditDep) -> TeamOut:
    async with db.transaction() as session:
        return TeamOut.of(await UserAdmin(session, audit).create_team(Actor.of(admin), body.name))


@routes.delete("/teams/{team_id}", status_code=204, operation_id="deleteTeam")
async def delete_team(team_id: int, admin: AdminDep, db: DbDep, keys: KeyAuthDep, audit: AuditDep) -> None:
    """Delete a team; its members stay, without a team."""
    async with db.transaction() as session:
        members = await UserAdmin(session, audit).delete_team(Actor.of(admin), team_id)
    for user_id in members:  # committed: their cached principals name the old team
        keys.forget_user(user_id)
