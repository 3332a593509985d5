"""API key authentication with a short in-process cache, so most requests skip the database.

Without it every request reads its key row (with the user and team) in a transaction of
its own: a round trip and a commit per request for an answer that rarely changes.
:class:`KeyAuthenticator` remembers verified keys for ``ttl_s`` seconds, under the
SHA-256 of the secret (the secret itself is not kept).

Staleness is bounded: a key revoked, or a user changed, through this process (the admin
API) is forgotten at once (:meth:`KeyAuthenticator.forget_key`,
:meth:`KeyAuthenticator.forget_user`); changed anywhere else (the CLI, another replica,
SQL) it keeps working in this process for at most ``ttl_s`` seconds after the change
commits. A generation counter keeps a lookup that started before a forget from storing
its possibly stale answer after it.

Refusals are never cached: a key that does not authenticate is looked up every time
(and audited by the caller). ``last_used_at`` is refreshed when the cache misses, so it
lags by at most ``ttl_s`` on top of its own 60-second resolution.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from backend.db.session import Database
from backend.identity.service import IdentityService, hash_key
from backend.identity.types import Principal

MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    expires: float  # on the authenticator's monotonic clock


class KeyAuthenticator:
    """One per process (the container holds it). Not thread-safe: one event loop."""

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
            return await self._load(secret, channel)
        digest = hash_key(secret)
        hit = self._entries.get(digest)
        if hit is not None and hit.expires > self._clock():
            return hit.principal if hit.principal.channel == channel else replace(hit.principal, channel=channel)
        generation = self._generation
        principal = await self._load(secret, channel)
        if generation == self._generation:
            if digest not in self._entries and len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest stored
            self._entries[digest] = _Entry(principal, self._clock() + self._ttl_s)
        return principal

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

    async def _load(self, secret: str | None, channel: str) -> Principal:
        async with self._db.transaction() as session:
            return await IdentityService(session).authenticate(secret, channel)
