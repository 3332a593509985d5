"""Conversation history keyset paging on a migrated PostgreSQL (timestamptz, ties)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from backend.chat.exchanges import ConversationService, Exchange
from backend.conversations.service import HistoryService
from backend.db.models import Conversation, Message
from backend.db.session import Database
from backend.errors import NotFound
from backend.identity.service import IdentityService
from backend.principal import Principal

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def principal(db: Database, email: str) -> Principal:
    async with db.transaction() as session:
        user = await IdentityService(session).ensure_user(email)
        return Principal(user.id, user.email, None, frozenset(), frozenset({"user"}))


async def test_pages_cover_every_row_once_with_tied_timestamps(db: Database) -> None:
    alice = await principal(db, "alice@example.com")
    bob = await principal(db, "bob@example.com")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    # Seven conversations; three share one updated_at so the id breaks the tie.
    stamps = [base + timedelta(minutes=m) for m in (1, 2, 2, 2, 3, 4, 5)]
    async with db.transaction() as session:
        for i, stamp in enumerate(stamps):
            session.add(
                Conversation(
                    id=f"00000000-0000-0000-0000-00000000000{i}",
                    user_id=alice.user_id,
                    title=f"c{i}",
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        session.add(Conversation(id="bob-1", user_id=bob.user_id, title="b", updated_at=base))
    expected = sorted(
        ((s, f"00000000-0000-0000-0000-00000000000{i}") for i, s in enumerate(stamps)),
        reverse=True,
    )
    seen: list[str] = []
    async with db.session() as session:
        service = HistoryService(session)
        page = await service.list_owned(alice, limit=3)
        seen += [c.id for c in page.conversations]
        while page.next_cursor is not None:
            # The cursor is the opaque text the HTTP API hands out (timestamptz inside).
            page = await service.list_owned(alice, limit=3, cursor=page.next_cursor)
            seen += [c.id for c in page.conversations]
    assert seen == [cid for _, cid in expected]


async def test_delete_cascades_and_respects_ownership(db: Database) -> None:
    alice = await principal(db, "alice@example.com")
    bob = await principal(db, "bob@example.com")
    async with db.transaction() as session:
        session.add(Conversation(id="conv-a", user_id=alice.user_id, title="a"))
        await session.flush()
        session.add(Message(conversation_id="conv-a", request_id="r1", role="user", content="x"))
    async with db.transaction() as session:
        with pytest.raises(NotFound):
            await HistoryService(session).delete_owned("conv-a", bob)
    async with db.transaction() as session:
        await HistoryService(session).delete_owned("conv-a", alice)
    async with db.session() as session:
        with pytest.raises(NotFound):
            await HistoryService(session).get_owned("conv-a", alice)
        left = await session.scalars(select(Message).where(Message.conversation_id == "conv-a"))
        assert left.all() == []


async def test_record_stores_the_exchange_and_checks_ownership_when_continuing(db: Database) -> None:
    alice = await principal(db, "alice@example.com")
    bob = await principal(db, "bob@example.com")

    def exchange(text: str) -> Exchange:
        return Exchange("req-1", text, "the answer", "general", {"expert": "general"}, 5, 7)

    async with db.transaction() as session:
        conv_id = await ConversationService(session).record(alice, None, exchange("First line\nsecond"))
    async with db.transaction() as session:
        assert await ConversationService(session).record(alice, conv_id, exchange("again")) == conv_id
    with pytest.raises(NotFound):
        async with db.transaction() as session:
            await ConversationService(session).record(bob, conv_id, exchange("not mine"))

    async with db.session() as session:
        conv = await session.get(Conversation, conv_id)
        messages = (await session.scalars(select(Message).order_by(Message.id))).all()
        # The route column itself: SQL NULL for a user message, not the JSON value null.
        null_routes = await session.scalar(select(func.count()).where(Message.route.is_(None)))
    assert conv is not None and conv.user_id == alice.user_id and conv.title == "First line"
    assert conv.updated_at > conv.created_at
    assert [(m.role, m.content) for m in messages] == [
        ("user", "First line\nsecond"),
        ("assistant", "the answer"),
        ("user", "again"),
        ("assistant", "the answer"),
    ]
    assert [m.route for m in messages] == [None, {"expert": "general"}, None, {"expert": "general"}]
    assert [(m.prompt_tokens, m.completion_tokens) for m in messages] == [(0, 0), (5, 7), (0, 0), (5, 7)]
    assert null_routes == 2
