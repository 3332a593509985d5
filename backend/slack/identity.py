"""Slack user -> expertgate Principal: by linked Slack id, then by the Slack email.

The first contact looks the user up with ``users.info`` (needs the ``users:read.email``
scope) and links the account (``users.slack_user_id``); later requests are one query.
An email with no expertgate user is refused, or provisioned as a plain ``user`` when
EXPERTGATE_SLACK_AUTO_PROVISION is on (audited as ``user.provisioned``) and the Slack user
is a full member of the workspace (never a guest or a Slack Connect outsider).
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.models import User
from backend.db.session import Database
from backend.errors import Forbidden
from backend.identity.service import IdentityService, principal_of
from backend.principal import Principal
from backend.slack.errors import UnknownSlackUser

CHANNEL = "slack"
PROVISIONED = "user.provisioned"


def _active_principal(user: User) -> Principal:
    if user.disabled:
        raise Forbidden("your expertgate account is disabled", code="user_disabled")
    return principal_of(user, CHANNEL)


class SlackIdentity:
    def __init__(self, db: Database, client: AsyncWebClient, audit: AuditTrail, *, auto_provision: bool) -> None:
        self._db = db
        self._client = client
        self._audit = audit
        self._auto_provision = auto_provision

    async def resolve(self, slack_user_id: str) -> Principal:
        """The Principal of a Slack user. Raises UnknownSlackUser (also when Slack will not
        say who the user is) or Forbidden (disabled)."""
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.slack_user_id == slack_user_id))
            if user is not None:
                return _active_principal(user)
        email, outsider = await self._slack_email(slack_user_id)
        async with self._db.transaction() as session:
            user = await session.scalar(select(User).where(User.email == email))
            if user is None:
                if not self._auto_provision or outsider:
                    raise UnknownSlackUser(
                        f"there is no expertgate account for {email}; ask an administrator to add you"
                    )
                user = await IdentityService(session).ensure_user(email)
                await self._audit.append(
                    session,
                    AuditEntry(
                        action=PROVISIONED,
                        outcome=Outcome.OK,
                        actor=Actor(channel=CHANNEL, user_id=user.id, email=user.email),
                        payload={"slack_user_id": slack_user_id},
                    ),
                )
            user.slack_user_id = slack_user_id
            await session.flush()
            return _active_principal(user)

    async def _slack_email(self, slack_user_id: str) -> tuple[str, bool]:
        """The user's email, and whether they are an outsider (a guest, or a Slack Connect
        user of another organisation): outsiders are never auto-provisioned."""
        try:
            response = await self._client.users_info(user=slack_user_id)
        except SlackApiError as exc:
            raise UnknownSlackUser(
                f"Slack would not tell expertgate who you are ({exc.response.get('error', 'error')}); "
                "ask an administrator to check the app's users:read scopes"
            ) from exc
        info = response.get("user") or {}
        outsider = any(bool(info.get(flag)) for flag in ("is_stranger", "is_restricted", "is_ultra_restricted"))
        profile = info.get("profile") or {}
        email = profile.get("email")
        if not isinstance(email, str) or not email:
            raise UnknownSlackUser(
                "Slack did not share your email address with expertgate, so your account "
                "cannot be found (the app needs the users:read.email scope)"
            )
        return email.strip().lower(), outsider
