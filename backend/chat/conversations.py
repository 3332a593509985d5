"""Conversations and their messages (service: flushes, never commits)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import Conversation, Message, utcnow
from backend.errors import NotFound
from backend.identity.types import Principal


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
        self, principal: Principal, conversation_id: str | None, exchange: Exchange
    ) -> str:
        """Store the exchange, creating the conversation when ``conversation_id`` is None."""
        now = utcnow()
        if conversation_id is None:
            conv = Conversation(
                id=str(uuid.uuid4()),
                user_id=principal.user_id,
                title=exchange.user_text.strip().splitlines()[0][:120]
                if exchange.user_text.strip()
                else "",
                channel=principal.channel,
                created_at=now,
                updated_at=now,
            )
            self._session.add(conv)
        else:
            conv = await self.get_owned(conversation_id, principal)
            conv.updated_at = now
        self._session.add_all(
            [
                Message(
                    conversation_id=conv.id,
                    request_id=exchange.request_id,
                    role="user",
                    content=exchange.user_text,
                    prompt_tokens=0,
                    completion_tokens=0,
                    created_at=now,
                ),
                Message(
                    conversation_id=conv.id,
                    request_id=exchange.request_id,
                    role="assistant",
                    content=exchange.answer_text,
                    expert=exchange.expert,
                    route=exchange.route,
                    prompt_tokens=exchange.prompt_tokens,
                    completion_tokens=exchange.completion_tokens,
                    created_at=now,
                ),
            ]
        )
        await self._session.flush()
        return conv.id
