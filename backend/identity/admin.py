"""Key administration with its audit events, in the caller's transaction.

Every path that creates or revokes a key (CLI, admin API, first-start bootstrap) goes
through :class:`KeyAdmin`, so none of them can skip the audit event.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.identity.service import IdentityService
from backend.identity.types import IssuedKey, KeyInfo

KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"


class KeyAdmin:
    """Flushes, never commits. Append-last: the audit event is each method's last write."""

    def __init__(self, session: AsyncSession, trail: AuditTrail) -> None:
        self._session = session
        self._identity = IdentityService(session)
        self._trail = trail

    async def create(
        self,
        actor: Actor,
        email: str,
        *,
        role: str = "user",
        groups: set[str] | None = None,
        team: str | None = None,
        name: str = "",
    ) -> IssuedKey:
        """Create the user if new (adding ``role``/``groups``/``team``) and a key for it.

        Raises BadRequest for a malformed email or an unknown role.
        """
        user = await self._identity.ensure_user(email, roles={role}, groups=groups, team=team)
        issued = await self._identity.create_key(user, name=name)
        await self._trail.append(
            self._session,
            AuditEntry(
                action=KEY_CREATED,
                outcome=Outcome.OK,
                actor=actor,
                status=201,
                payload={
                    "key_id": issued.key_id,
                    "key_prefix": issued.secret[:10],
                    "key_name": name,
                    "for_user": user.email,
                    "for_user_id": user.id,
                    "roles": sorted(user.roles),
                    "groups": sorted(user.groups),
                    "team": team,
                },
            ),
        )
        return issued

    async def revoke(self, actor: Actor, key_id: int) -> tuple[KeyInfo, bool]:
        """Revoke ``key_id``; (key, changed). Raises NotFound. Audited either way."""
        info, changed = await self._identity.revoke_key(key_id)
        await self._trail.append(
            self._session,
            AuditEntry(
                action=KEY_REVOKED,
                outcome=Outcome.OK,
                actor=actor,
                status=200,
                payload={
                    "key_id": info.key_id,
                    "key_prefix": info.prefix,
                    "for_user": info.email,
                    "already_revoked": not changed,
                },
            ),
        )
        return info, changed
