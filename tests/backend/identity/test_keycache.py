"""KeyAuthenticator on a real migrated SQLite database, for API keys and web session
cookies: hits skip the database, forgets (revocation, logout, a changed user) take effect
at once, changes made elsewhere within the TTL (a fake clock stands in for time), a
session is not remembered past its end, refusals are never cached."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from backend.db.models import ApiKey, User, utcnow
from backend.db.session import Database
from backend.errors import Unauthorized
from backend.identity.keycache import KeyAuthenticator
from backend.identity.service import IdentityService
from backend.identity.sessions import WebSessionService

TTL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement the engine runs from now on."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def new_key(db: Database, email: str) -> tuple[int, int, str]:
    async with db.transaction() as session:
        identity = IdentityService(session)
        user = await identity.ensure_user(email)
        issued = await identity.create_key(user)
    return issued.user_id, issued.key_id, issued.secret


async def revoke_elsewhere(db: Database, key_id: int) -> None:
    """What `expertgate keys revoke` in another process does: a committed row change."""
    async with db.transaction() as session:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))


async def test_a_verified_key_is_served_from_memory(db: Database, statements: list[str]) -> None:
    _, key_id, secret = await new_key(db, "dana@example.com")
    auth = KeyAuthenticator(db, TTL, clock=Clock())
    first = await auth.authenticate(secret)
    assert first.email == "dana@example.com" and first.key_id == key_id
    read = len(statements)
    assert read > 0
    again = await auth.authenticate(secret, channel="slack")
    assert again == replace(first, channel="slack")
    assert len(statements) == read  # no statement for the hit


async def test_revocation_elsewhere_takes_effect_within_the_ttl(db: Database) -> None:
    _, key_id, secret = await new_key(db, "dana@example.com")
    clock = Clock()
    auth = KeyAuthenticator(db, TTL, clock=clock)
    await auth.authenticate(secret)
    await revoke_elsewhere(db, key_id)
    clock.now += TTL - 0.1
    assert (await auth.authenticate(secret)).key_id == key_id  # the bounded staleness
    clock.now += 0.2
    with pytest.raises(Unauthorized):
        await auth.authenticate(secret)


async def test_forget_key_refuses_at_once(db: Database) -> None:
    _, key_id, secret = await new_key(db, "dana@example.com")
    _, _, other = await new_key(db, "erin@example.com")
    auth = KeyAuthenticator(db, TTL, clock=Clock())
    await auth.authenticate(secret)
    await auth.authenticate(other)
    await revoke_elsewhere(db, key_id)
    auth.forget_key(key_id)
    with pytest.raises(Unauthorized):
        await auth.authenticate(secret)
    assert (await auth.authenticate(other)).email == "erin@example.com"


async def test_forget_user_rereads_a_changed_user(db: Database) -> None:
    user_id, _, secret = await new_key(db, "dana@example.com")
    auth = KeyAuthenticator(db, TTL, clock=Clock())
    assert (await auth.authenticate(secret)).roles == frozenset({"user"})
    async with db.transaction() as session:
        await session.execute(update(User).where(User.id == user_id).values(roles=["auditor", "user"]))
    assert (await auth.authenticate(secret)).roles == frozenset({"user"})  # cached
    auth.forget_user(user_id)
    assert (await auth.authenticate(secret)).roles == frozenset({"auditor", "user"})


async def test_refusals_are_not_cached(db: Database, statements: list[str]) -> None:
    auth = KeyAuthenticator(db, TTL, clock=Clock())
    for _ in range(2):
        before = len(statements)
        with pytest.raises(Unauthorized):
            await auth.authenticate("eg-not-a-key")
        assert len(statements) > before
    with pytest.raises(Unauthorized):
        await auth.authenticate(None)


async def test_ttl_zero_reads_every_time(db: Database, statements: list[str]) -> None:
    _, _, secret = await new_key(db, "dana@example.com")
    auth = KeyAuthenticator(db, 0, clock=Clock())
    await auth.authenticate(secret)
    before = len(statements)
    await auth.authenticate(secret)
    assert len(statements) > before


async def test_the_cache_holds_at_most_max_entries(db: Database, statements: list[str]) -> None:
    secrets = [(await new_key(db, f"u{i}@example.com"))[2] for i in range(3)]
    auth = KeyAuthenticator(db, TTL, max_entries=2, clock=Clock())
    for secret in secrets:
        await auth.authenticate(secret)
    before = len(statements)
    await auth.authenticate(secrets[2])  # newest: still held
    assert len(statements) == before
    await auth.authenticate(secrets[0])  # oldest: evicted, read again
    assert len(statements) > before


async def new_session(db: Database, email: str, lasts: timedelta = timedelta(hours=8)) -> tuple[int, str]:
    """A user signed in on the web: (user id, cookie value)."""
    async with db.transaction() as session:
        user = await IdentityService(session).ensure_user(email)
        cookie, _ = await WebSessionService(session).create(user, lasts)
    return user.id, cookie


async def test_a_live_web_session_is_served_from_memory(db: Database, statements: list[str]) -> None:
    _, cookie = await new_session(db, "dana@example.com")
    auth = KeyAuthenticator(db, TTL, clock=Clock())
    first = await auth.authenticate_session(cookie)
    assert first.email == "dana@example.com" and first.channel == "web"
    read = len(statements)
    assert await auth.authenticate_session(cookie) == first
    assert len(statements) == read  # no statement for the hit
    with pytest.raises(Unauthorized):
        await auth.authenticate_session("not-a-session")  # refusals are read every time


async def test_a_session_is_not_remembered_past_its_own_end(db: Database, statements: list[str]) -> None:
    _, cookie = await new_session(db, "dana@example.com", lasts=timedelta(seconds=2))
    clock = Clock()
    auth = KeyAuthenticator(db, TTL, clock=clock)
    await auth.authenticate_session(cookie)
    clock.now += 2.5  # before the TTL, after the session's end
    before = len(statements)
    await auth.authenticate_session(cookie)  # read again (in real time it has not ended yet)
    assert len(statements) > before


async def test_logout_and_user_changes_are_forgotten_at_once(db: Database) -> None:
    user_id, cookie = await new_session(db, "dana@example.com")
    _, other = await new_session(db, "erin@example.com")
    auth = KeyAuthenticator(db, TTL, clock=Clock())
    await auth.authenticate_session(cookie)
    await auth.authenticate_session(other)
    async with db.transaction() as session:
        await session.execute(update(User).where(User.id == user_id).values(roles=["auditor", "user"]))
    auth.forget_user(user_id)
    assert (await auth.authenticate_session(cookie)).roles == frozenset({"auditor", "user"})
    async with db.transaction() as session:
        assert await WebSessionService(session).revoke(cookie) is not None  # the logout
    assert (await auth.authenticate_session(cookie)).email == "dana@example.com"  # cached until forgotten
    auth.forget_session(cookie)
    with pytest.raises(Unauthorized):
        await auth.authenticate_session(cookie)
    assert (await auth.authenticate_session(other)).email == "erin@example.com"
