"""API keys: creation (secret shown once, SHA-256 stored) and authentication."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import ApiKey, Team, User, utcnow
from backend.errors import BadRequest, NotFound, Unauthorized
from backend.identity.types import IssuedKey, KeyInfo
from backend.principal import Principal

KEY_PREFIX = "eg-"
ROLES = frozenset({"admin", "auditor", "reviewer", "user"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# last_used_at is refreshed at most this often per key: a write per request would
# serialize every request on the database for a timestamp nobody needs to the second.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_key(secret: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough: no dictionary to attack.
    return hashlib.sha256(secret.encode()).hexdigest()


def principal_of(user: User, channel: str, *, key_id: int | None = None) -> Principal:
    """The Principal of ``user`` on ``channel`` (``api``, ``web``, ``slack`` ...), from
    its team, groups and roles as stored now. Whether the user may act (disabled) is
    the caller's check."""
    return Principal(
        user_id=user.id,
        email=user.email,
        team=user.team.name if user.team else None,
        groups=frozenset(user.groups),
        roles=frozenset(user.roles),
        channel=channel,
        key_id=key_id,
    )


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

    async def authenticate(self, secret: str | None, channel: str = "api", *, touch: bool = True) -> Principal:
        """The Principal for a bearer secret. Raises Unauthorized (missing, unknown, revoked).
        ``touch``: refresh the key's ``last_used_at`` in this transaction."""
        if not secret:
            raise Unauthorized(
                "missing API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        row = await self._session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
        if row is None or row.revoked_at is not None or row.user.disabled:
            raise Unauthorized("the API key is not valid (unknown, revoked or its user disabled)")
        if touch:
            self._touch(row)
            await self._session.flush()
        return principal_of(row.user, channel, key_id=row.id)

    async def touch_key(self, key_id: int) -> None:
        """Refresh ``last_used_at`` of key ``key_id`` (at most every LAST_USED_RESOLUTION)."""
        row = await self._session.get(ApiKey, key_id)
        if row is not None:
            self._touch(row)
            await self._session.flush()

    @staticmethod
    def _touch(row: ApiKey) -> None:
        now = utcnow()
        if row.last_used_at is None or _aware(row.last_used_at) < now - LAST_USED_RESOLUTION:
            row.last_used_at = now

    async def why_refused(self, secret: str) -> tuple[str, KeyInfo | None]:
        """Why ``secret`` does not authenticate (for the audit log, never for the caller):
        ``unknown`` (forged or mistyped), ``revoked`` or ``user_disabled``, and the key."""
        row = await self._session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
        if row is None:
            return "unknown", None
        reason = "revoked" if row.revoked_at is not None else "user_disabled"
        return reason, _key_info(row)

    async def list_keys(self, email: str | None = None) -> list[KeyInfo]:
        """Every key (of ``email``'s user if given), oldest first. Never the secrets."""
        stmt = select(ApiKey).order_by(ApiKey.id)
        if email is not None:
            stmt = stmt.join(User).where(User.email == email.strip().lower())
        return [_key_info(row) for row in (await self._session.scalars(stmt)).all()]

    async def get_key(self, key_id: int) -> KeyInfo:
        """Raises NotFound."""
        return _key_info(await self._key_row(key_id))

    async def revoke_key(self, key_id: int) -> tuple[KeyInfo, bool]:
        """Revoke a key; returns it and whether it changed (False: already revoked).
        Raises NotFound."""
        row = await self._key_row(key_id)
        changed = row.revoked_at is None
        if changed:
            row.revoked_at = utcnow()
            await self._session.flush()
        return _key_info(row), changed

    async def find_key_id(self, ref: str) -> int:
        """A key id from a numeric id or a key prefix as printed by `keys list`.
        Raises NotFound, or BadRequest when a prefix matches more than one key."""
        if ref.isdigit():
            return (await self._key_row(int(ref))).id
        ids = list(
            (await self._session.scalars(select(ApiKey.id).where(ApiKey.prefix == ref))).all()
        )
        if not ids:
            raise NotFound(f"no API key with id or prefix {ref!r}", code="key_not_found")
        if len(ids) > 1:
            raise BadRequest(f"prefix {ref!r} matches {len(ids)} keys; use the id", param="key")
        return ids[0]

    async def _key_row(self, key_id: int) -> ApiKey:
        row = await self._session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key with id {key_id}", code="key_not_found")
        return row

    async def count_users(self) -> int:
        from sqlalchemy import func

        return int(await self._session.scalar(select(func.count()).select_from(User)) or 0)


def _aware(ts: datetime) -> datetime:
    # SQLite gives naive datetimes back; they were written as UTC.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _key_info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        key_id=row.id,
        prefix=row.prefix,
        name=row.name,
        user_id=row.user_id,
        email=row.user.email,
        roles=tuple(sorted(row.user.roles)),
        created_at=_aware(row.created_at),
        last_used_at=_aware(row.last_used_at) if row.last_used_at else None,
        revoked_at=_aware(row.revoked_at) if row.revoked_at else None,
    )
