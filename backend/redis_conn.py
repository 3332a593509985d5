"""The one Redis client of an API process, shared by quotas, expert capacity, the
quota-policy cache and the failed-login throttle, and closed by the runtime on
shutdown.

What a broken Redis may cost a request is bounded here, for every user of the client at
once, not by each call site:

- every command (and every pipeline) runs under one deadline, ``timeout_s`` (default
  1 s), that covers everything it waits for: a pooled connection, the connect, the
  reply and redis-py's own retry (one immediate retry on a connection error: a pooled
  connection may be stale after Redis restarted);
- a command that runs out of that time marks Redis **down** for the whole process
  (:class:`RedisHealth`, a small circuit breaker): from then on every command raises
  :class:`RedisUnavailable` at once, without touching the network, so the caller's
  fail-open / fail-closed setting applies immediately. A request that makes five Redis
  calls pays one timeout, not five;
- while Redis is down a background probe sends ``PING`` every ``probe_s`` (default
  0.5 s); the first answer marks it up again. No request ever waits for the probe.

A Redis that refuses connections (port closed, reset) fails each call in well under a
millisecond, so it does not trip the breaker: every call keeps trying, and the first
call after Redis is back uses it. The pool never makes a caller queue for a connection:
redis-py's ``ConnectionPool`` opens a new one or raises ``MaxConnectionsError`` at once,
and a command cancelled by the deadline disconnects its connection (no late reply can be
read by a later command).

Errors (all ``redis.exceptions.RedisError``, which every user already handles):

- :class:`RedisUnavailable` (a ``ConnectionError``): Redis is marked down; nothing sent;
- :class:`RedisTimedOut` (a ``TimeoutError``): this call ran out of ``timeout_s`` and
  marked Redis down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backend.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Untyped = Callable[..., Awaitable[Any]]  # redis-py's own methods carry no annotations

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_PROBE_S = 0.5


class RedisUnavailable(RedisConnectionError):
    """Redis is marked down (a call timed out lately); raised without touching the network."""


class RedisTimedOut(RedisTimeoutError):
    """A call did not finish within the client's ``timeout_s``; Redis is now marked down."""


def bounded_options(timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Connection options of every client on the request path (a fresh Retry each).

    The socket timeouts are a backstop: :class:`BoundedRedis` puts one deadline of the
    same length around each whole command."""
    return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, "retry": Retry(NoBackoff(), 1)}


class RedisHealth:
    """Whether this process takes its Redis to be answering: one per client, shared by
    every caller of that client. Not thread-safe: one event loop.

    ``ping`` sends one PING without going through the breaker (the probe's own call)."""

    def __init__(
        self,
        ping: Callable[[], Awaitable[object]],
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        probe_s: float = DEFAULT_PROBE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self.probe_s = probe_s
        self._ping = ping
        self._clock = clock
        self._down_since: float | None = None
        self._probe: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self._down_since is None

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` within ``timeout_s``. Raises RedisUnavailable at once while Redis is
        down, RedisTimedOut (and marks it down) when the call runs out of time, and
        whatever else the call raises."""
        if self._down_since is not None:
            raise RedisUnavailable(
                f"Redis marked down {self._clock() - self._down_since:.1f} s ago (a call timed out); "
                f"re-checked every {self.probe_s:g} s"
            )
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call()
        except (TimeoutError, RedisTimeoutError) as exc:  # the deadline's, or a socket's
            self._mark_down()
            raise RedisTimedOut(f"Redis did not answer within {self.timeout_s:g} s") from exc

    def _mark_down(self) -> None:
        if self._down_since is None:
            self._down_since = self._clock()
            log.error(
                "Redis did not answer within %gs: marked down, its users fail open/closed at once "
                "until a PING (every %gs) answers",
                self.timeout_s,
                self.probe_s,
            )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probing(), name="redis-health-probe")

    async def _probing(self) -> None:
        while True:
            await asyncio.sleep(self.probe_s)
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._ping()
            except Exception as exc:  # any failure means still down; the next probe retries
                log.debug("Redis health probe failed: %r", exc)
                continue
            if self._down_since is not None:
                log.warning("Redis answers again after %.1f s: marked up", self._clock() - self._down_since)
            self._down_since = None
            return

    async def close(self) -> None:
        """Stop the probe (the client is closing)."""
        probe, self._probe = self._probe, None
        if probe is not None and not probe.done():
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe


class BoundedRedis(Redis):
    """redis-py's asyncio client with every command and pipeline run through one
    :class:`RedisHealth` (see the module docstring). Scripts (``register_script``) run
    their EVALSHA / SCRIPT LOAD as commands, so they are bounded too."""

    def __init__(
        self, *, timeout_s: float = DEFAULT_TIMEOUT_S, probe_s: float = DEFAULT_PROBE_S, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.health = RedisHealth(self._unguarded_ping, timeout_s=timeout_s, probe_s=probe_s)

    @classmethod
    def connect(
        cls, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, probe_s: float = DEFAULT_PROBE_S
    ) -> BoundedRedis:
        """A client for ``url`` that owns its connection pool. Connects lazily."""
        client = cls(
            connection_pool=ConnectionPool.from_url(url, **bounded_options(timeout_s)),
            timeout_s=timeout_s,
            probe_s=probe_s,
        )
        client.auto_close_connection_pool = True
        return client

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        command: Untyped = super().execute_command
        return await self.health.run(lambda: command(*args, **options))

    async def _unguarded_ping(self) -> object:
        command: Untyped = super().execute_command
        return await command("PING")

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return BoundedPipeline(self.health, self.connection_pool, self.response_callbacks, transaction, shard_hint)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await self.health.close()
        await super().aclose(close_connection_pool)


class BoundedPipeline(Pipeline):
    """A pipeline whose execution (and any immediate command, under WATCH) runs through
    its client's :class:`RedisHealth`."""

    def __init__(self, health: RedisHealth, *args: Any) -> None:
        super().__init__(*args)
        self._health = health

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        execute: Untyped = super().execute
        try:
            return list(await self._health.run(lambda: execute(raise_on_error)))
        except RedisUnavailable:
            reset: Untyped = self.reset
            await reset()  # nothing was sent: drop the queued commands
            raise

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        command: Untyped = super().immediate_execute_command
        return await self._health.run(lambda: command(*args, **options))


def connect_redis(settings: Settings) -> BoundedRedis | None:
    """A client for ``settings.redis_url`` (None when unset: the embedded default),
    bounded by ``settings.redis_timeout_s`` and re-checked every ``settings.redis_probe_s``
    while down. Connects lazily, so building it never fails on an unreachable Redis."""
    if not settings.redis_url:
        return None
    return BoundedRedis.connect(settings.redis_url, timeout_s=settings.redis_timeout_s, probe_s=settings.redis_probe_s)
