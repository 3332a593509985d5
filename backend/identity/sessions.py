"""Web sessions: what the browser holds after SSO, and the CSRF rule that goes with it.

The session cookie (``eg_session``) holds 256 random bits; SQL keeps only their SHA-256
with an expiry and a revocation time, so a database dump gives no usable cookie and
logout takes effect at once on every replica. The cookie is HttpOnly (no script can
read it), SameSite=Lax (not sent on cross-site subrequests or form posts) and Secure
when the site is served over HTTPS.

CSRF: a request authenticated by the cookie with an unsafe method (anything but GET,
HEAD, OPTIONS) must carry ``X-Requested-With: expertgate``. A cross-site page cannot
set a custom header without a CORS preflight, which this server never grants; the
SameSite cookie attribute is the second lock on the same door.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import User, WebSession, utcnow
from backend.errors import Forbidden, Unauthorized
from backend.identity.service import principal_of
from backend.principal import Principal

SESSION_COOKIE = "eg_session"
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "expertgate"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRejected(Forbidden):
    code = "csrf_failed"

    def __init__(self) -> None:
        super().__init__(
            "a request authenticated by the session cookie must carry the header 'X-Requested-With: expertgate'"
        )


def hash_token(token: str) -> str:
    # 256-bit random tokens: a fast hash suffices (nothing to guess from a dictionary).
    return hashlib.sha256(token.encode()).hexdigest()


def check_csrf(method: str, header: str | None) -> None:
    """Raise CsrfRejected for an unsafe ``method`` without the expected header value."""
    if method.upper() not in SAFE_METHODS and header != CSRF_VALUE:
        raise CsrfRejected()


class WebSessionService:
    """Flushes, never commits: the caller's transaction decides."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(self, user: User, ttl: timedelta) -> tuple[str, datetime]:
        """A new session for ``user``: (cookie value, expiry). The value is not stored."""
        token = secrets.token_urlsafe(32)
        expires = utcnow() + ttl
        self._session.add(WebSession(user_id=user.id, token_hash=hash_token(token), expires_at=expires))
        await self._session.flush()
        return token, expires

    async def authenticate(self, token: str) -> tuple[Principal, datetime]:
        """The Principal of a live session and when the session ends. Raises
        Unauthorized (unknown, expired, revoked, user disabled) with code
        ``session_invalid``."""
        row = await self._session.scalar(select(WebSession).where(WebSession.token_hash == hash_token(token)))
        if row is None or row.revoked_at is not None or _aware(row.expires_at) <= utcnow() or row.user.disabled:
            raise Unauthorized("the web session has ended; sign in again", code="session_invalid")
        return web_principal(row.user), _aware(row.expires_at)

    async def revoke(self, token: str) -> Principal | None:
        """End the session ``token`` names; its user's Principal, or None if it named no
        live session (logging out twice is not an error)."""
        row = await self._session.scalar(select(WebSession).where(WebSession.token_hash == hash_token(token)))
        if row is None or row.revoked_at is not None:
            return None
        row.revoked_at = utcnow()
        await self._session.flush()
        return web_principal(row.user)


def web_principal(user: User) -> Principal:
    """The Principal of ``user`` signed in through the web session (channel ``web``)."""
    return principal_of(user, "web")


def _aware(ts: datetime) -> datetime:
    # SQLite gives naive datetimes back; they were written as UTC.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
