"""API schemas for ``/api/v1/conversations``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.api.schemas.chat import Citation, FallbackOut, GroundingOut, ReviewRef
from backend.api.schemas.paging import NextCursor


class ConversationOut(BaseModel):
    id: str
    title: str
    channel: str
    created_at: datetime
    updated_at: datetime
    # With a search (``q``): an excerpt of the first message holding it; null when only
    # the title matched, or when the list was not searched.
    match: str | None = None


class ConversationPage(BaseModel):
    """Most recently updated first."""

    data: list[ConversationOut]
    next_cursor: NextCursor


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
    upstream_model: str | None = None  # the model the expert's endpoint ran (older records: null)
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


class ConversationRename(BaseModel):
    """``title``: 1-200 characters once surrounding whitespace is trimmed, one line."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)

    @field_validator("title")
    @classmethod
    def _one_line(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("the title is empty")
        return value


class ExchangesDrop(BaseModel):
    """The exchanges (by the request id their question and answer share) to remove."""

    model_config = ConfigDict(extra="forbid")

    request_ids: list[str] = Field(min_length=1, max_length=200)
