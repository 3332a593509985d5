"""Reading and deleting the caller's own conversations (flushes, never commits).

Ownership is checked by :class:`backend.chat.conversations.ConversationService`, so a
conversation of someone else reads exactly like one that does not exist (NotFound).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.chat.conversations import ConversationService
from backend.db.models import Conversation, Message
from backend.errors import BadRequest
from backend.identity.types import Principal


@dataclass(frozen=True, slots=True)
class Cursor:
    """A keyset position in the newest-first listing: (updated_at, id) of the last row seen."""

    updated_at: datetime
    conversation_id: str

    def encode(self) -> str:
        raw = f"{self.updated_at.isoformat()}|{self.conversation_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Raises BadRequest (param ``cursor``) for anything this class did not encode."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            stamp, conversation_id = raw.split("|", 1)
            return cls(datetime.fromisoformat(stamp), conversation_id)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadRequest("the cursor is not one this API returned", param="cursor") from None


@dataclass(frozen=True, slots=True)
class Page:
    conversations: list[Conversation]
    next_cursor: Cursor | None


class HistoryService:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._owned = ConversationService(session)

    async def list_owned(
        self, principal: Principal, *, limit: int, after: Cursor | None = None
    ) -> Page:
        """The caller's conversations, most recently updated first, ``limit`` at a time."""
        query = select(Conversation).where(Conversation.user_id == principal.user_id)
        if after is not None:
            query = query.where(
                or_(
                    Conversation.updated_at < after.updated_at,
                    and_(
                        Conversation.updated_at == after.updated_at,
                        Conversation.id < after.conversation_id,
                    ),
                )
            )
        query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        rows = list((await self._session.scalars(query.limit(limit + 1))).all())
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more else None
        return Page(rows, Cursor(last.updated_at, last.id) if last is not None else None)

    async def get_owned(
        self, conversation_id: str, principal: Principal
    ) -> tuple[Conversation, list[Message]]:
        """The conversation and its messages in order. Raises NotFound."""
        conv = await self._owned.get_owned(conversation_id, principal)
        messages = await self._session.scalars(
            select(Message).where(Message.conversation_id == conv.id).order_by(Message.id)
        )
        return conv, list(messages.all())

    async def delete_owned(self, conversation_id: str, principal: Principal) -> None:
        """Delete the conversation and its messages. Raises NotFound."""
        conv = await self._owned.get_owned(conversation_id, principal)
        await self._session.execute(delete(Message).where(Message.conversation_id == conv.id))
        await self._session.delete(conv)
        await self._session.flush()
