"""/api/v1/conversations: the caller's own history. Parse, call HistoryService, map.

List (newest first; ``q`` searches titles and message text), read, rename (PATCH),
drop exchanges (after a regenerated, edited or compared answer replaced them: audited as
``conversation.exchanges_dropped``), delete. Someone else's conversation is a 404.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import ValidationError

from backend.api.deps import AuditDep, DbDep, PrincipalDep
from backend.api.schemas.conversations import (
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    ConversationRename,
    ExchangesDrop,
    MessageOut,
    StoredRoute,
)
from backend.api.schemas.paging import CursorParam
from backend.conversations.service import HistoryService
from backend.db.models import Conversation, Message

log = logging.getLogger(__name__)

routes = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


def _conversation(conv: Conversation, match: str | None = None) -> ConversationOut:
    return ConversationOut(
        id=conv.id,
        title=conv.title,
        channel=conv.channel,
        created_at=conv.created_at,
        updated_at=conv.updated_at,
        match=match,
    )


def _route(message: Message) -> StoredRoute | None:
    if message.route is None:
        return None
    try:
        route = StoredRoute.model_validate(message.route)
    except ValidationError as exc:  # an older stored shape: show the message without it
        log.warning("message %s: unreadable stored route: %s", message.id, exc)
        return None
    if route.fallbacks and route.reason != "fallback":
        # The live response reports an answer that fell back as reason "fallback" too.
        route = route.model_copy(update={"reason": "fallback"})
    return route


def _message(message: Message) -> MessageOut:
    return MessageOut(
        id=message.id,
        role=message.role,  # type: ignore[arg-type]
        content=message.content,
        request_id=message.request_id,
        created_at=message.created_at,
        expert=message.expert,
        route=_route(message),
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
    )


@routes.get("", response_model=ConversationPage, operation_id="listConversations")
async def list_conversations(
    principal: PrincipalDep,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: CursorParam = None,
    q: Annotated[
        str | None, Query(max_length=200, description="only conversations whose title or messages hold this text")
    ] = None,
) -> ConversationPage:
    search = q.strip() if q else None
    async with db.session() as session:
        page = await HistoryService(session).list_owned(principal, limit=limit, cursor=cursor, search=search or None)
    return ConversationPage(
        data=[_conversation(c, page.matches.get(c.id)) for c in page.conversations], next_cursor=page.next_cursor
    )


@routes.get("/{conversation_id}", response_model=ConversationDetail, operation_id="getConversation")
async def get_conversation(conversation_id: str, principal: PrincipalDep, db: DbDep) -> ConversationDetail:
    async with db.session() as session:
        conv, messages = await HistoryService(session).get_owned(conversation_id, principal)
    return ConversationDetail(**_conversation(conv).model_dump(), messages=[_message(m) for m in messages])


@routes.patch("/{conversation_id}", response_model=ConversationOut, operation_id="renameConversation")
async def rename_conversation(
    conversation_id: str, body: ConversationRename, principal: PrincipalDep, db: DbDep
) -> ConversationOut:
    async with db.transaction() as session:
        conv = await HistoryService(session).rename(conversation_id, principal, body.title)
        return _conversation(conv)


@routes.post("/{conversation_id}/drop-exchanges", response_model=ConversationDetail, operation_id="dropExchanges")
async def drop_exchanges(
    conversation_id: str, body: ExchangesDrop, principal: PrincipalDep, db: DbDep, audit: AuditDep
) -> ConversationDetail:
    """Remove exchanges the caller replaced (a regenerated answer, an edited question, the
    answer not kept after asking another expert). The conversation as it is now."""
    async with db.transaction() as session:
        conv, messages = await HistoryService(session).drop_exchanges(
            conversation_id, principal, body.request_ids, audit
        )
        return ConversationDetail(**_conversation(conv).model_dump(), messages=[_message(m) for m in messages])


@routes.delete("/{conversation_id}", status_code=204, operation_id="deleteConversation")
async def delete_conversation(conversation_id: str, principal: PrincipalDep, db: DbDep) -> Response:
    async with db.transaction() as session:
        await HistoryService(session).delete_owned(conversation_id, principal)
    return Response(status_code=204)
