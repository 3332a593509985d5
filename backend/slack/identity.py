"""Slack user -> expertgate Principal: by linked Slack id, then by the Slack email.

The first contact looks the user up with ``users.info`` (needs the ``users:read.email``
scope) and links the account (``users.slack_user_id``); later requests are one query.
An email with no expertgate user is refused, or provisioned as a plain ``user`` when
EXPERTGATE_SLACK_AUTO_PROVISION is on (audited as ``user.provisioned``).
"""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.models import User
from backend.db.session import Database
from backend.errors import Forbidden
from backend.identity.service import IdentityService, principal_of
from backend.identity.types import Principal
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
        """The Principal of a Slack user. Raises UnknownSlackUser or Forbidden (disabled);
        Slack API errors (SlackApiError) propagate."""
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.slack_user_id == slack_user_id))
            if user is not None:
                return _active_principal(user)
        email = await self._slack_email(slack_user_id)
        async with self._db.transaction() as session:
            user = await session.scalar(select(User).where(User.email == email))
            if user is None:
                if not self._auto_provision:
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

    async def _slack_email(self, slack_user_id: str) -> str:
        response = await self._client.users_info(user=slack_user_id)
        profile = (response.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        if not isinstance(email, str) or not email:
            raise UnknownSlackUser(
                "Slack did not share your email address with expertgate, so your account "
                "cannot be found (the app needs the users:read.email scope)"
            )
        return email.strip().lower()
