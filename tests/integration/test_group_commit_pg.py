"""Chat exchanges group-committed on real PostgreSQL: new conversations and follow-ups
from concurrent requests share transactions and multi-row INSERTs; a follow-up on someone
else's conversation fails alone and leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.chat.conversations import ConversationService, Exchange
from backend.db.group_commit import GroupCommit, Rows
from backend.db.models import Conversation, Message, User
from backend.db.session import Database
from backend.errors import NotFound
from backend.identity.types import Principal

pytestmark = pytest.mark.integration


def principal(user_id: int) -> Principal:
    return Principal(user_id, f"u{user_id}@example.com", None, frozenset(), frozenset())


def exchange(n: int) -> Exchange:
    return Exchange(f"req-{n}", f"question {n}", f"answer {n}", "general", {"expert": "general"}, 3, 5)


async def test_mixed_exchanges_commit_together_and_a_bad_one_alone(db: Database) -> None:
    async with db.transaction() as session:
        session.add_all([User(id=1, email="u1@example.com"), User(id=2, email="u2@example.com")])
        await session.flush()
        mine = await ConversationService(session).record(principal(1), None, exchange(0))
        theirs = await ConversationService(session).record(principal(2), None, exchange(1))

    writes = GroupCommit(db)

    def record(who: int, conversation: str | None, n: int) -> Callable[[AsyncSession, Rows], Awaitable[str]]:
        async def unit(session: AsyncSession, rows: Rows) -> str:
            return await ConversationService(session).record(principal(who), conversation, exchange(n), rows)

        return unit

    units = [record(1, None, n) for n in range(10, 15)]  # five new conversations
    units += [record(1, mine, 20), record(1, mine, 21)]  # two follow-ups
    units.insert(3, record(1, theirs, 30))  # someone else's conversation
    results = await asyncio.gather(*(writes.run(u) for u in units), return_exceptions=True)

    assert isinstance(results[3], NotFound)
    assert all(isinstance(r, str) for i, r in enumerate(results) if i != 3)
    assert results.count(mine) == 2
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 2 + 5
        mine_messages = await session.scalar(
            select(func.count()).select_from(Message).where(Message.conversation_id == mine)
        )
        assert mine_messages == 2 * 3  # the first exchange and both follow-ups
        assert await session.scalar(select(func.count()).where(Message.request_id == "req-30")) == 0
