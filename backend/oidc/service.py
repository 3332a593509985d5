"""Finishing a sign-in: a validated ID token becomes a user, a web session and an audit event.

Linking. A user is found by the stored subject (``users.oidc_subject``: issuer and
``sub``), else by email, and created when neither exists; the first SSO login of an
existing user (made with an API key) links the subject to it. A user already linked to
another subject is refused: an email address that changed hands at the provider must
not inherit the old account.

Claims mapping, applied at every login (the provider is the source of truth):
- groups: the groups claim replaces the user's groups; a token without the claim
  leaves them as they are.
- roles: ``user`` always; ``admin`` / ``auditor`` are granted or withdrawn by
  membership of the configured groups. A role with no groups configured is left as
  it is (so an admin made on the CLI stays one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.models import User
from backend.db.session import Database
from backend.errors import BadRequest
from backend.identity.service import IdentityService
from backend.identity.sessions import WebSessionService, web_principal
from backend.oidc.client import IdClaims
from backend.oidc.errors import SignInError, SsoRefused
from backend.principal import Principal

log = logging.getLogger(__name__)

LOGIN = "auth.login"
LOGIN_FAILED = "auth.login_failed"
LOGOUT = "auth.logout"


@dataclass(frozen=True, slots=True)
class RoleMapping:
    """Groups whose members get a role; an empty tuple leaves that role alone."""

    admin_groups: tuple[str, ...] = ()
    auditor_groups: tuple[str, ...] = ()

    def roles(self, current: set[str], groups: set[str]) -> set[str]:
        roles = set(current) | {"user"}
        for role, granting in (("admin", self.admin_groups), ("auditor", self.auditor_groups)):
            if not granting:
                continue
            if groups & set(granting):
                roles.add(role)
            else:
                roles.discard(role)
        return roles


@dataclass(frozen=True, slots=True)
class SignedIn:
    principal: Principal
    token: str  # the session cookie's value (only its hash is stored)
    expires_at: datetime


class SsoLogin:
    """Flushes, never commits. Append-last: the audit event is the last write."""

    def __init__(self, session: AsyncSession, trail: AuditTrail, mapping: RoleMapping) -> None:
        self._session = session
        self._trail = trail
        self._mapping = mapping

    async def complete(self, claims: IdClaims, ttl: timedelta, client: str | None) -> SignedIn:
        """Provision or update the user, open a session, audit ``auth.login``.
        Raises SsoRefused (subject_mismatch, user_disabled, bad_email)."""
        user = await self._user(claims)
        if user.disabled:
            raise SsoRefused("this account is disabled", reason="user_disabled")
        user.oidc_subject = claims.linked_subject
        if claims.groups is not None:
            user.groups = sorted(claims.groups)
        user.roles = sorted(self._mapping.roles(set(user.roles), set(user.groups)))
        token, expires = await WebSessionService(self._session).create(user, ttl)
        principal = web_principal(user)
        await self._trail.append(
            self._session,
            AuditEntry(
                action=LOGIN,
                outcome=Outcome.OK,
                actor=Actor.of(principal),
                status=303,
                payload={
                    "method": "oidc",
                    "issuer": claims.issuer,
                    "subject": claims.subject,
                    "groups": sorted(principal.groups),
                    "roles": sorted(principal.roles),
                    "client": client,
                    "session_expires_at": expires.isoformat(),
                },
            ),
        )
        return SignedIn(principal, token, expires)

    async def _user(self, claims: IdClaims) -> User:
        linked = await self._session.scalar(select(User).where(User.oidc_subject == claims.linked_subject))
        if linked is not None:
            return linked
        existing = await self._session.scalar(select(User).where(User.email == claims.email.strip().lower()))
        if existing is not None and existing.oidc_subject is None and not claims.email_verified:
            # Linking an existing account by email trusts the provider's email claim; an
            # unverified (or unstated) one could be anybody's, e.g. the bootstrap admin's.
            raise SsoRefused(
                "this email address belongs to an existing account and the provider does not say it is "
                "verified; an admin must link the account",
                reason="email_unverified",
            )
        try:
            user = await IdentityService(self._session).ensure_user(claims.email)
        except BadRequest as exc:
            raise SsoRefused(f"the provider's email claim is not usable: {exc.message}", reason="bad_email") from exc
        if user.oidc_subject is not None and user.oidc_subject != claims.linked_subject:
            raise SsoRefused(
                "this email address belongs to an account linked to another identity", reason="subject_mismatch"
            )
        return user


async def sign_in(
    db: Database, trail: AuditTrail, mapping: RoleMapping, claims: IdClaims, ttl: timedelta, client: str | None
) -> SignedIn:
    """:meth:`SsoLogin.complete` in a transaction of its own. Two first logins of the same
    new user at once (two tabs) race to create it: the loser's insert breaks the unique
    email, and its retry finds the user the winner created."""
    try:
        async with db.transaction() as session:
            return await SsoLogin(session, trail, mapping).complete(claims, ttl, client)
    except IntegrityError:
        log.info("sso: concurrent first login of %s; retrying once", claims.email)
        async with db.transaction() as session:
            return await SsoLogin(session, trail, mapping).complete(claims, ttl, client)


async def record_login_failure(db: Database, trail: AuditTrail, error: SignInError, *, client: str | None) -> None:
    """Audit a refused sign-in (``auth.login_failed``) in a transaction of its own.

    Best effort, like every refusal's audit: a failing audit write is logged and the
    caller goes on to raise the sign-in error itself.
    """
    entry = AuditEntry(
        action=LOGIN_FAILED,
        outcome=Outcome.for_status(error.status),
        actor=Actor.anonymous("web"),
        status=error.status,
        reason=error.reason,
        payload={
            "method": "oidc",
            "client": client,
            "error": {"code": error.code, "message": trail.redact_free_text(error.message)},
        },
    )
    try:
        await trail.record(db, entry)
    except Exception:
        log.exception("could not audit a refused sign-in (%s)", error.reason)


async def record_logout(trail: AuditTrail, session: AsyncSession, principal: Principal) -> None:
    """Audit ``auth.logout`` in the caller's transaction (the one revoking the session)."""
    await trail.append(session, AuditEntry(action=LOGOUT, outcome=Outcome.OK, actor=Actor.of(principal), status=204))
