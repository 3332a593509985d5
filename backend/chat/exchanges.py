"""Conversations and their messages (service: writes in the caller's transaction, never commits).

Recording an exchange is on every chat request's path, so :meth:`ConversationService.record`
writes with prebuilt Core statements instead of the ORM unit of work: the conversation is
one INSERT (or, for an existing one, one UPDATE that also checks ownership), the two
messages one executemany with no RETURNING, and nothing written is read back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import JSON, CursorResult, Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import Conversation, Message, utcnow
from backend.db.writes import Rows
from backend.errors import NotFound
from backend.principal import Principal

_CONVERSATIONS = cast(Table, Conversation.__table__)
_INSERT_CONVERSATION = insert(_CONVERSATIONS)
_TOUCH_CONVERSATION = update(_CONVERSATIONS).where(
    _CONVERSATIONS.c.id == bindparam("conversation_id"),
    _CONVERSATIONS.c.user_id == bindparam("owner_id"),
)
# A user message has no route: SQL NULL, as the ORM stored it (a plain JSON bind
# would store None as the JSON value null).
_INSERT_MESSAGES = insert(cast(Table, Message.__table__)).values(
    route=bindparam("route", type_=JSON(none_as_null=True))
)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One user turn and the assistant's answer, as stored."""

    request_id: str
    user_text: str
    answer_text: str
    expert: str
    route: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int


class ConversationService:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_owned(self, conversation_id: str, principal: Principal) -> Conversation:
        """The caller's conversation. Raises NotFound (also for someone else's: no probing)."""
        conv = await self._session.get(Conversation, conversation_id)
        if conv is None or conv.user_id != principal.user_id:
            raise NotFound(
                f"conversation {conversation_id!r} does not exist",
                code="conversation_not_found",
                param="conversation_id",
            )
        return conv

    async def last_expert(self, conversation_id: str) -> str | None:
        return await self._session.scalar(
            select(Message.expert)
            .where(Message.conversation_id == conversation_id, Message.role == "assistant")
            .order_by(Message.id.desc())
            .limit(1)
        )

    async def record(
        self, principal: Principal, conversation_id: str | None, exchange: Exchange, rows: Rows | None = None
    ) -> str:
        """Store the exchange, creating the conversation when ``conversation_id`` is None.

        ``rows``: leave the INSERTs there for the caller's group commit to send with other
        requests' rows (backend/db/group_commit.py); without it they are executed here.
        The ownership check of an existing conversation is executed here either way.
        Raises NotFound when ``conversation_id`` is not the caller's (or no longer exists).
        """
        inserts = rows if rows is not None else Rows()
        now = utcnow()
        if conversation_id is None:
            conversation_id = str(uuid.uuid4())
            text = exchange.user_text.strip()
            inserts.add(
                _INSERT_CONVERSATION,
                {
                    "id": conversation_id,
                    "user_id": principal.user_id,
                    "title": text.splitlines()[0][:120] if text else "",
                    "channel": principal.channel,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        else:
            touched = cast(
                CursorResult[Any],
                await self._session.execute(
                    _TOUCH_CONVERSATION,
                    {"conversation_id": conversation_id, "owner_id": principal.user_id, "updated_at": now},
                ),
            )
            if touched.rowcount != 1:
                raise NotFound(
                    f"conversation {conversation_id!r} does not exist",
                    code="conversation_not_found",
                    param="conversation_id",
                )
        inserts.add(
            _INSERT_MESSAGES,
            {
                "conversation_id": conversation_id,
                "request_id": exchange.request_id,
                "role": "user",
                "content": exchange.user_text,
                "expert": None,
                "route": None,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "created_at": now,
            },
            {
                "conversation_id": conversation_id,
                "request_id": exchange.request_id,
                "role": "assistant",
                "content": exchange.answer_text,
                "expert": exchange.expert,
                "route": exchange.route,
                "prompt_tokens": exchange.prompt_tokens,
                "completion_tokens": exchange.completion_tokens,
                "created_at": now,
            },
        )
        if rows is None:
            await inserts.flush(self._session)
        return conversation_id
