"""User and team administration with its audit events, in the caller's transaction.

Keys have :class:`backend.identity.admin.KeyAdmin`; this is the rest of the console's
"Users and teams": list, edit a user's roles, groups, team and disabled flag, create
and delete teams. Every write appends its audit event last, so none can skip it.
A disabled user's keys stop authenticating at once (IdentityService.authenticate).

A change that takes an admin's role away (demoting or disabling them) through this
console is serialized with every other such change, and its actor must still be an
active admin when it runs (its key or session may have been authenticated from a cache
a few seconds old). As no admin can demote or disable themself, the actor is an admin
that remains: two admins demoting each other at the same moment cannot lock everyone
out of the console, the second one is refused (403 ``admin_required``) once the first
has committed. (Roles that an identity provider maps at sign-in, backend/oidc, are the
provider's to decide.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.models import ApiKey, Team, User
from backend.errors import BadRequest, Forbidden, NotFound
from backend.identity.service import ROLES

USER_UPDATED = "user.updated"
# PostgreSQL advisory lock held by a change that takes an admin's role away, until its
# transaction ends. Its own first key ("EA"): the ingest jobs' locks are ("EG", hash).
_ADMINS_LOCK = {"space": 0x4541, "key": 1}
TEAM_CREATED = "team.created"
TEAM_DELETED = "team.deleted"


@dataclass(frozen=True, slots=True)
class UserInfo:
    user_id: int
    email: str
    team: str | None
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    disabled: bool
    active_keys: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TeamInfo:
    team_id: int
    name: str
    members: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserChange:
    """What to change; None leaves a field as it is. ``team`` "" removes the team."""

    roles: frozenset[str] | None = None
    groups: frozenset[str] | None = None
    team: str | None = None
    disabled: bool | None = None


class UserAdmin:
    """Flushes, never commits."""

    def __init__(self, session: AsyncSession, trail: AuditTrail) -> None:
        self._session = session
        self._trail = trail

    async def users(self) -> list[UserInfo]:
        active = (
            select(ApiKey.user_id, func.count().label("n"))
            .where(ApiKey.revoked_at.is_(None))
            .group_by(ApiKey.user_id)
            .subquery()
        )
        rows = await self._session.execute(
            select(User, func.coalesce(active.c.n, 0))
            .outerjoin(active, active.c.user_id == User.id)
            .order_by(User.email)
        )
        return [_user_info(user, int(n)) for user, n in rows]

    async def teams(self) -> list[TeamInfo]:
        rows = await self._session.execute(
            select(Team, func.count(User.id))
            .outerjoin(User, User.team_id == Team.id)
            .group_by(Team.id)
            .order_by(Team.name)
        )
        return [TeamInfo(team.id, team.name, int(n), team.created_at) for team, n in rows]

    async def update_user(self, actor: Actor, user_id: int, change: UserChange) -> UserInfo:
        """Apply ``change``. Raises NotFound, or BadRequest for an unknown role, an empty
        role set, or an admin disabling or demoting themself (the console's last door);
        Forbidden when it takes an admin away and the actor is no longer an active admin."""
        removes_admin = change.disabled is True or (change.roles is not None and "admin" not in change.roles)
        if removes_admin:
            await self._lock_admins()  # before any read: what follows sees the latest commits
        user = await self._session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}", param="user_id")
        if change.roles is not None:
            bad = change.roles - ROLES
            if bad or not change.roles:
                raise BadRequest(f"roles must be a non-empty subset of {', '.join(sorted(ROLES))}", param="roles")
        if user_id == actor.user_id and (change.disabled or (change.roles is not None and "admin" not in change.roles)):
            raise BadRequest("admins cannot disable or demote themselves", param="user_id")
        if removes_admin and _active_admin(user.roles, user.disabled):
            await self._still_admin(actor)
        before = _snapshot(user)
        if change.roles is not None:
            user.roles = sorted(change.roles)
        if change.groups is not None:
            user.groups = sorted(g.strip() for g in change.groups if g.strip())
        if change.team is not None:
            user.team_id = (await self._team(change.team.strip())).id if change.team.strip() else None
        if change.disabled is not None:
            user.disabled = change.disabled
        await self._session.flush()
        await self._session.refresh(user, ["team"])
        after = _snapshot(user)
        await self._audit(
            actor,
            USER_UPDATED,
            {
                "user_id": user.id,
                "email": user.email,
                "changed": {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]},
            },
        )
        keys = await self._session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        )
        return _user_info(user, int(keys or 0))

    async def _lock_admins(self) -> None:
        """Serialize the changes that take an admin away, to the end of the transaction.

        PostgreSQL: an advisory lock. SQLite: a write that changes nothing takes the
        database's write lock (one writer at a time), which it keeps until commit.
        """
        if self._session.get_bind().dialect.name == "postgresql":
            await self._session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), _ADMINS_LOCK)
        else:
            await self._session.execute(update(User).where(User.id == -1).values(disabled=False))

    async def _still_admin(self, actor: Actor) -> None:
        """Raises Forbidden unless ``actor`` is an active admin now (read under the lock)."""
        row = None
        if actor.user_id is not None:
            row = (
                await self._session.execute(select(User.roles, User.disabled).where(User.id == actor.user_id))
            ).first()
        if row is None or not _active_admin(row.roles, row.disabled):
            raise Forbidden(
                "you are no longer an active admin, so you cannot take an admin's role away", code="admin_required"
            )

    async def create_team(self, actor: Actor, name: str) -> TeamInfo:
        """Raises BadRequest if a team of that name exists or the name is blank."""
        name = name.strip()
        if not name:
            raise BadRequest("a team needs a name", param="name")
        if await self._session.scalar(select(Team).where(Team.name == name)) is not None:
            raise BadRequest(f"team {name!r} exists", param="name")
        team = await self._team(name)
        await self._audit(actor, TEAM_CREATED, {"team_id": team.id, "team": team.name})
        return TeamInfo(team.id, team.name, 0, team.created_at)

    async def delete_team(self, actor: Actor, team_id: int) -> list[int]:
        """Delete the team; its members stay, without a team. Returns the members' ids
        (their cached principals name the old team). Raises NotFound."""
        team = await self._session.get(Team, team_id)
        if team is None:
            raise NotFound(f"no team with id {team_id}", param="team_id")
        members = list(await self._session.scalars(select(User.id).where(User.team_id == team_id)))
        await self._session.execute(update(User).where(User.team_id == team_id).values(team_id=None))
        await self._session.delete(team)
        await self._session.flush()
        await self._audit(actor, TEAM_DELETED, {"team_id": team_id, "team": team.name, "members": len(members)})
        return members

    async def _team(self, name: str) -> Team:
        """The team called ``name``, created if missing."""
        team = await self._session.scalar(select(Team).where(Team.name == name))
        if team is None:
            team = Team(name=name)
            self._session.add(team)
            await self._session.flush()
        return team

    async def _audit(self, actor: Actor, action: str, payload: dict[str, object]) -> None:
        await self._trail.append(
            self._session, AuditEntry(action=action, outcome=Outcome.OK, actor=actor, status=200, payload=payload)
        )


def _active_admin(roles: list[str], disabled: bool) -> bool:
    return "admin" in roles and not disabled


def _snapshot(user: User) -> dict[str, object]:
    return {
        "roles": sorted(user.roles),
        "groups": sorted(user.groups),
        "team": user.team.name if user.team else None,
        "disabled": user.disabled,
    }


def _user_info(user: User, active_keys: int) -> UserInfo:
    return UserInfo(
        user_id=user.id,
        email=user.email,
        team=user.team.name if user.team else None,
        roles=tuple(sorted(user.roles)),
        groups=tuple(sorted(user.groups)),
        disabled=user.disabled,
        active_keys=active_keys,
        created_at=user.created_at,
    )
