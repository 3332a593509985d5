"""API keys: creation (secret shown once, SHA-256 stored) and authentication."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import ApiKey, Team, User
from backend.errors import BadRequest, Unauthorized
from backend.identity.types import IssuedKey, Principal

KEY_PREFIX = "eg-"
ROLES = frozenset({"admin", "auditor", "user"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def hash_key(secret: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough: no dictionary to attack.
    return hashlib.sha256(secret.encode()).hexdigest()


class IdentityService:
    """Flushes, never commits: the caller's transaction decides."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def ensure_user(
        self,
        email: str,
        *,
        roles: set[str] | None = None,
        groups: set[str] | None = None,
        team: str | None = None,
    ) -> User:
        """Return the user with ``email``, creating it (and its team) if missing.

        Given roles and groups are added to an existing user's. Raises BadRequest for a
        malformed email or an unknown role.
        """
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise BadRequest(f"{email!r} is not an email address", param="email")
        bad = set(roles or ()) - ROLES
        if bad:
            raise BadRequest(
                f"unknown role(s) {', '.join(sorted(bad))}; roles are {', '.join(sorted(ROLES))}",
                param="role",
            )
        user = await self._session.scalar(select(User).where(User.email == email))
        if user is None:
            user = User(email=email, roles=sorted(roles or {"user"}), groups=sorted(groups or ()))
            self._session.add(user)
        else:
            user.roles = sorted(set(user.roles) | set(roles or ()))
            user.groups = sorted(set(user.groups) | set(groups or ()))
        if team:
            team_row = await self._session.scalar(select(Team).where(Team.name == team))
            if team_row is None:
                team_row = Team(name=team)
                self._session.add(team_row)
                await self._session.flush()
            user.team_id = team_row.id
        await self._session.flush()
        return user

    async def create_key(self, user: User, name: str = "") -> IssuedKey:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(user_id=user.id, prefix=secret[:10], key_hash=hash_key(secret), name=name)
        self._session.add(row)
        await self._session.flush()
        return IssuedKey(key_id=row.id, user_id=user.id, email=user.email, secret=secret)

    async def authenticate(self, secret: str | None, channel: str = "api") -> Principal:
        """The Principal for a bearer secret. Raises Unauthorized (missing, unknown, revoked)."""
        if not secret:
            raise Unauthorized(
                "missing API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        row = await self._session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
        if row is None or row.revoked_at is not None or row.user.disabled:
            raise Unauthorized("the API key is not valid (unknown, revoked or its user disabled)")
        user = row.user
        return Principal(
            user_id=user.id,
            email=user.email,
            team=user.team.name if user.team else None,
            groups=frozenset(user.groups),
            roles=frozenset(user.roles),
            channel=channel,
        )

    async def count_users(self) -> int:
        from sqlalchemy import func

        return int(await self._session.scalar(select(func.count()).select_from(User)) or 0)
