"""API schemas for ``/api/v1/conversations``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from backend.chat.schemas import Citation, FallbackOut, GroundingOut, ReviewRef


class ConversationOut(BaseModel):
    id: str
    title: str
    channel: str
    created_at: datetime
    updated_at: datetime


class ConversationPage(BaseModel):
    """Newest first. Pass ``next_cursor`` back as ``cursor`` for the next page (null: no more)."""

    data: list[ConversationOut]
    next_cursor: str | None


class StoredRoute(BaseModel):
    """How one stored answer was routed: the same fields as the live ``expertgate`` object."""

    expert: str
    routed_to: str | None = None
    reason: str
    confidence: float | None = None
    probabilities: dict[str, float] = {}
    router_version: str | None = None
    citations: list[Citation] = []
    fallbacks: list[FallbackOut] = []
    grounding: GroundingOut | None = None  # the marks shown when the conversation reopens
    review: ReviewRef | None = None  # sent to a person: its status now (docs/review.md)


class MessageOut(BaseModel):
    id: int
    role: Literal["user", "assistant", "system"]
    content: str
    request_id: str
    created_at: datetime
    expert: str | None = None
    route: StoredRoute | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]
