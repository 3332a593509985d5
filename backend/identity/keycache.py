"""API key and web session authentication with a short in-process cache, so most
requests skip the database.

Without it every request reads its key row or its session row (with the user and team)
in a transaction of its own: a round trip and a commit per request for an answer that
rarely changes. :class:`KeyAuthenticator` remembers verified keys and session cookies for
``ttl_s`` seconds (a session no longer than it lasts), under the SHA-256 of the secret
(the secret itself is not kept).

Staleness is bounded: a key revoked, a session ended (logout) or a user changed through
this process (the admin API, the web logout) is forgotten at once
(:meth:`KeyAuthenticator.forget_key`, :meth:`KeyAuthenticator.forget_session`,
:meth:`KeyAuthenticator.forget_user`); changed anywhere else (the CLI, another replica,
SQL) it keeps working in this process for at most ``ttl_s`` seconds after the change
commits. A generation counter keeps a lookup that started before a forget from storing
its possibly stale answer after it.

Refusals are never cached: a key or cookie that does not authenticate is looked up every
time (and audited by the caller). ``last_used_at`` is refreshed when the cache misses, so
it lags by at most ``ttl_s`` on top of its own 60-second resolution.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from sqlalchemy.exc import OperationalError

from backend.db.models import utcnow
from backend.db.session import Database
from backend.identity.service import IdentityService, hash_key
from backend.identity.sessions import WebSessionService, hash_token
from backend.principal import Principal

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    expires: float  # on the authenticator's monotonic clock


class KeyAuthenticator:
    """One per process (the runtime holds it). Not thread-safe: one event loop."""

    def __init__(
        self,
        db: Database,
        ttl_s: float,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._generation = 0

    async def authenticate(self, secret: str | None, channel: str = "api") -> Principal:
        """The Principal for a bearer secret. Raises Unauthorized (missing, unknown,
        revoked, user disabled), like :meth:`IdentityService.authenticate`."""
        if not secret or self._ttl_s <= 0:
            return await self._load_key(secret, channel)
        principal = await self._cached(hash_key(secret), lambda: self._timeless(self._load_key(secret, channel)))
        return principal if principal.channel == channel else replace(principal, channel=channel)

    async def authenticate_session(self, cookie: str) -> Principal:
        """The Principal of a live web session (its cookie's value). Raises Unauthorized
        (``session_invalid``), like :meth:`WebSessionService.authenticate`."""
        if self._ttl_s <= 0:
            return (await self._load_session(cookie))[0]
        return await self._cached(_session_digest(cookie), lambda: self._load_session(cookie))

    async def _cached(self, digest: str, load: Callable[[], Awaitable[tuple[Principal, float | None]]]) -> Principal:
        """The entry under ``digest`` while fresh, else ``load()``: (principal, seconds it
        stays valid at most, or None for no limit of its own), stored for later calls."""
        hit = self._entries.get(digest)
        if hit is not None and hit.expires > self._clock():
            return hit.principal
        generation = self._generation
        principal, valid_s = await load()
        if generation == self._generation:
            if digest not in self._entries and len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest stored
            ttl_s = self._ttl_s if valid_s is None else min(self._ttl_s, valid_s)
            self._entries[digest] = _Entry(principal, self._clock() + ttl_s)
        return principal

    def forget_session(self, cookie: str) -> None:
        """Drop the cached session of ``cookie`` (after its logout commits)."""
        self._generation += 1
        self._entries.pop(_session_digest(cookie), None)

    def forget_key(self, key_id: int) -> None:
        """Drop the cached key ``key_id`` (after its revocation commits)."""
        self._forget(lambda p: p.key_id == key_id)

    def forget_user(self, user_id: int) -> None:
        """Drop every cached key of ``user_id`` (after a change to the user commits)."""
        self._forget(lambda p: p.user_id == user_id)

    def _forget(self, match: Callable[[Principal], bool]) -> None:
        self._generation += 1
        for digest in [d for d, e in self._entries.items() if match(e.principal)]:
            del self._entries[digest]

    async def _load_key(self, secret: str | None, channel: str) -> Principal:
        """The key's principal, read without a write; then ``last_used_at`` refreshed in a
        transaction of its own, best effort: a database that is locked for writes (another
        writer, a migration) delays the caller by its busy timeout but does not refuse a
        key that reads as valid."""
        async with self._db.session() as session:
            principal = await IdentityService(session).authenticate(secret, channel, touch=False)
        if principal.key_id is not None:
            try:
                async with self._db.transaction() as session:
                    await IdentityService(session).touch_key(principal.key_id)
            except OperationalError:
                log.warning("could not record the use of key %s (database busy)", principal.key_id)
        return principal

    async def _load_session(self, cookie: str) -> tuple[Principal, float]:
        async with self._db.transaction() as session:
            principal, ends = await WebSessionService(session).authenticate(cookie)
        return principal, (ends - utcnow()).total_seconds()

    @staticmethod
    async def _timeless(loading: Awaitable[Principal]) -> tuple[Principal, None]:
        return await loading, None


def _session_digest(cookie: str) -> str:
    # Its own namespace: a session cookie and an API key never share an entry.
    return "session:" + hash_token(cookie)
