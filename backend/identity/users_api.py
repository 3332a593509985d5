"""/api/v1/admin/users and /api/v1/admin/teams: list (auditors too), edit (admins, audited).

Parse, call :class:`backend.identity.users.UserAdmin`, map. Keys stay under
/api/v1/admin/keys (identity/api.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from backend.audit.types import Actor
from backend.container import Container
from backend.deps import get_container, require_admin, require_audit_reader
from backend.identity.types import Principal
from backend.identity.users import TeamInfo, UserAdmin, UserChange, UserInfo

router = APIRouter(prefix="/api/v1/admin", tags=["identity"])

ContainerDep = Annotated[Container, Depends(get_container)]
AdminDep = Annotated[Principal, Depends(require_admin)]
ReaderDep = Annotated[Principal, Depends(require_audit_reader)]
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


@router.get("/users", response_model=list[UserOut], operation_id="listUsers")
async def list_users(_: ReaderDep, container: ContainerDep) -> list[UserOut]:
    async with container.db.session() as session:
        return [UserOut.of(u) for u in await UserAdmin(session, container.audit).users()]


@router.patch("/users/{user_id}", response_model=UserOut, operation_id="updateUser")
async def update_user(user_id: int, body: UserUpdate, admin: AdminDep, container: ContainerDep) -> UserOut:
    """Change roles, groups, team or the disabled flag (a disabled user's keys fail at once)."""
    change = UserChange(
        roles=frozenset(body.roles) if body.roles is not None else None,
        groups=frozenset(body.groups) if body.groups is not None else None,
        team=body.team,
        disabled=body.disabled,
    )
    async with container.db.transaction() as session:
        info = await UserAdmin(session, container.audit).update_user(Actor.of(admin), user_id, change)
    container.auth.forget_user(user_id)  # committed: cached keys of this user are read afresh
    return UserOut.of(info)


@router.get("/teams", response_model=list[TeamOut], operation_id="listTeams")
async def list_teams(_: ReaderDep, container: ContainerDep) -> list[TeamOut]:
    async with container.db.session() as session:
        return [TeamOut.of(t) for t in await UserAdmin(session, container.audit).teams()]


@router.post("/teams", response_model=TeamOut, status_code=201, operation_id="createTeam")
async def create_team(body: TeamCreate, admin: AdminDep, container: ContainerDep) -> TeamOut:
    async with container.db.transaction() as session:
        return TeamOut.of(await UserAdmin(session, container.audit).create_team(Actor.of(admin), body.name))


@router.delete("/teams/{team_id}", status_code=204, operation_id="deleteTeam")
async def delete_team(team_id: int, admin: AdminDep, container: ContainerDep) -> None:
    """Delete a team; its members stay, without a team."""
    async with container.db.transaction() as session:
        members = await UserAdmin(session, container.audit).delete_team(Actor.of(admin), team_id)
    for user_id in members:  # committed: their cached principals name the old team
        container.auth.forget_user(user_id)
