"""Two admins demoting each other at the same moment on PostgreSQL: one admin remains.

Each change runs in its own transaction, as two API processes would run them. The
first holds the admins lock until it commits; the second waits for it, then finds its
own actor demoted and is refused, so the console keeps an admin.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from backend.audit.chain import ChainKey
from backend.audit.types import Actor
from backend.audit.writer import AuditTrail
from backend.db.models import User
from backend.db.session import Database
from backend.errors import Forbidden
from backend.guard.policy import PiiGuard
from backend.identity.service import IdentityService
from backend.identity.users import UserAdmin, UserChange

pytestmark = pytest.mark.integration

DEMOTE = UserChange(roles=frozenset({"user"}))


async def test_two_admins_demoting_each_other_leave_one_admin(db: Database) -> None:
    trail = AuditTrail(ChainKey(b"integration-test-secret-key-0123"), "redacted", PiiGuard())
    async with db.transaction() as session:
        identity = IdentityService(session)
        ana = (await identity.ensure_user("ana@example.com", roles={"admin"})).id
        bob = (await identity.ensure_user("bob@example.com", roles={"admin"})).id

    first_done = asyncio.Event()

    async def ana_demotes_bob() -> None:
        async with db.transaction() as session:
            await UserAdmin(session, trail).update_user(Actor("api", user_id=ana), bob, DEMOTE)
            first_done.set()
            await asyncio.sleep(0.3)  # bob's change starts meanwhile and must wait for this commit

    async def bob_demotes_ana() -> None:
        await first_done.wait()
        async with db.transaction() as session:
            await UserAdmin(session, trail).update_user(Actor("api", user_id=bob), ana, DEMOTE)

    first = asyncio.create_task(ana_demotes_bob())
    with pytest.raises(Forbidden) as refused:
        await bob_demotes_ana()
    await first
    assert refused.value.code == "admin_required"
    async with db.session() as session:
        roles = dict((await session.execute(select(User.email, User.roles))).tuples().all())
    assert roles == {"ana@example.com": ["admin"], "bob@example.com": ["user"]}
