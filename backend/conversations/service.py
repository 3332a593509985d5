"""The caller's own conversations: list and search, read, rename, drop exchanges, delete
(flushes, never commits).

Ownership is checked by :class:`backend.chat.exchanges.ConversationService`, so a
conversation of someone else reads exactly like one that does not exist (NotFound).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.chat.exchanges import ConversationService
from backend.db.models import Conversation, Message
from backend.db.paging import Keyset
from backend.errors import NotFound
from backend.principal import Principal

# Most recently updated first: (updated_at, id), the id breaking ties.
CONVERSATIONS = Keyset("conversations", (datetime, str))


@dataclass(frozen=True, slots=True)
class Page:
    """``matches``: for a search, conversation id -> a short excerpt of the first message
    that holds the query (absent when only the title matched)."""

    conversations: list[Conversation]
    next_cursor: str | None
    matches: dict[str, str] = field(default_factory=dict)


# Around a search hit, this many characters either side are shown.
EXCERPT_CONTEXT = 40
TITLE_CHARS = 120


def title_of(question: str) -> str:
    """The title a conversation gets from its first question: its first line, cut."""
    text = question.strip()
    return text.splitlines()[0][:TITLE_CHARS] if text else ""


def excerpt(text: str, query: str, context: int = EXCERPT_CONTEXT) -> str:
    """``text`` around the first case-insensitive occurrence of ``query``, on one line,
    with an ellipsis where it was cut ("" when it does not occur)."""
    at = text.casefold().find(query.casefold())
    if at < 0:
        return ""
    start, end = max(0, at - context), min(len(text), at + len(query) + context)
    body = " ".join(text[start:end].split())
    return f"{'…' if start > 0 else ''}{body}{'…' if end < len(text) else ''}"


DROPPED_ACTION = "conversation.exchanges_dropped"


class HistoryService:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._owned = ConversationService(session)

    async def list_owned(
        self, principal: Principal, *, limit: int, cursor: str | None = None, search: str | None = None
    ) -> Page:
        """The caller's conversations, most recently updated first, ``limit`` at a time,
        after ``cursor`` (None: from the first). Raises BadRequest (``invalid_cursor``)
        for a cursor this list did not hand out.

        ``search``: only those whose title or any message's text holds it (case-insensitive,
        taken literally: ``%`` and ``_`` are not wildcards), each with an excerpt.
        """
        query = select(Conversation).where(Conversation.user_id == principal.user_id)
        if search:
            in_messages = exists().where(
                Message.conversation_id == Conversation.id,
                Message.role.in_(("user", "assistant")),
                Message.content.icontains(search, autoescape=True),
            )
            query = query.where(or_(Conversation.title.icontains(search, autoescape=True), in_messages))
        past = CONVERSATIONS.after((Conversation.updated_at, Conversation.id), cursor, descending=True)
        if past is not None:
            query = query.where(past)
        query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        found = list((await self._session.scalars(query.limit(limit + 1))).all())
        rows, next_cursor = CONVERSATIONS.page(found, limit, lambda c: (c.updated_at, c.id))
        matches = await self._excerpts(rows, search) if search else {}
        return Page(rows, next_cursor, matches)

    async def _excerpts(self, conversations: list[Conversation], search: str) -> dict[str, str]:
        """conversation id -> an excerpt of its first message holding ``search``."""
        if not conversations:
            return {}
        hits = await self._session.execute(
            select(Message.conversation_id, Message.content)
            .where(
                Message.conversation_id.in_([c.id for c in conversations]),
                Message.role.in_(("user", "assistant")),
                Message.content.icontains(search, autoescape=True),
            )
            .order_by(Message.id)
        )
        out: dict[str, str] = {}
        for conversation_id, content in hits.all():
            if conversation_id not in out:
                # SQL's case folding may differ from casefold(): then the message's start.
                out[conversation_id] = excerpt(content, search) or " ".join(content[: 2 * EXCERPT_CONTEXT].split())
        return out

    async def rename(self, conversation_id: str, principal: Principal, title: str) -> Conversation:
        """Give the conversation a title of the caller's choosing. Raises NotFound.
        Its place in the newest-first list is kept (``updated_at`` follows messages only)."""
        conv = await self._owned.get_owned(conversation_id, principal)
        conv.title = title
        await self._session.flush()
        return conv

    async def drop_exchanges(
        self, conversation_id: str, principal: Principal, request_ids: list[str], audit: AuditTrail
    ) -> tuple[Conversation, list[Message]]:
        """Remove the exchanges (a question and its answer, by request id) from the
        conversation, which reads on as if they had never been asked; the audit trail
        keeps their requests. Used after a regenerated, edited or compared answer is in:
        the one it replaces goes.

        Every id must name an exchange of this conversation, or nothing is removed
        (NotFound ``exchange_not_found``). A title taken from a removed first question
        follows the new first question. Audited (``conversation.exchanges_dropped``) in
        the same session. Returns the conversation and its messages now.
        """
        conv = await self._owned.get_owned(conversation_id, principal)
        wanted = set(request_ids)
        messages = list(
            (
                await self._session.scalars(
                    select(Message).where(Message.conversation_id == conv.id).order_by(Message.id)
                )
            ).all()
        )
        missing = sorted(wanted - {m.request_id for m in messages})
        if missing:
            raise NotFound(
                f"no exchange {missing[0]!r} in conversation {conversation_id!r}",
                code="exchange_not_found",
                param="request_ids",
            )
        first_question = next((m for m in messages if m.role == "user"), None)
        kept = [m for m in messages if m.request_id not in wanted]
        await self._session.execute(
            delete(Message).where(Message.conversation_id == conv.id, Message.request_id.in_(wanted))
        )
        if (
            first_question is not None
            and first_question.request_id in wanted
            and conv.title == title_of(first_question.content)
        ):
            new_first = next((m for m in kept if m.role == "user"), None)
            conv.title = title_of(new_first.content) if new_first is not None else conv.title
        await self._session.flush()
        await audit.append(
            self._session,
            AuditEntry(
                action=DROPPED_ACTION, outcome=Outcome.OK, actor=Actor.of(principal), status=200,
                payload={"conversation_id": conv.id, "request_ids": sorted(wanted)},
            ),
        )  # fmt: skip
        return conv, kept

    async def get_owned(self, conversation_id: str, principal: Principal) -> tuple[Conversation, list[Message]]:
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
