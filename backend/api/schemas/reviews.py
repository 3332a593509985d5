"""API schemas for ``/api/v1/reviews``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.api.schemas.chat import Citation, GroundingOut, Text
from backend.api.schemas.paging import NextCursor

StatusOut = Literal["pending", "approved", "edited", "rejected"]


class ReviewOut(BaseModel):
    """A review as its reviewers see it. ``draft``: the model's answer, held from the
    asker (``delivery`` hold) until a decision; ``grounding``: its check, offsets into
    ``draft``; ``citations``: the passages it could cite."""

    id: str
    request_id: str
    conversation_id: str
    message_id: int
    expert: str
    trigger: Literal["on_fail", "always", "sample"]
    delivery: Literal["hold", "deliver_with_notice"]
    channel: str
    question: str
    draft: str
    grounding: GroundingOut | None = None
    citations: list[Citation] = []
    status: StatusOut
    final_text: str | None = None
    reviewer_email: str | None = None
    reason: str | None = None
    created_at: datetime
    decided_at: datetime | None = None


class ReviewOutcome(BaseModel):
    """What the asker may read of the review of their own answer: never the draft."""

    id: str
    status: StatusOut
    final_text: str | None = None
    reason: str | None = None
    decided_at: datetime | None = None


class ReviewList(BaseModel):
    data: list[ReviewOut]
    next_cursor: NextCursor


class ReviewDecisionIn(BaseModel):
    """``approve`` delivers the draft, ``edit`` delivers ``text`` instead, ``reject``
    tells the asker it was rejected, with ``reason`` (always required; audited)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "edit", "reject"]
    text: Text | None = Field(default=None, max_length=50_000)
    reason: Text = Field(min_length=1, max_length=2_000)


class ReviewQueueStats(BaseModel):
    """The queue as the dashboard shows it: pending reviews per expert and how long they
    have waited (seconds; 0 when none is pending)."""

    pending: int
    by_expert: dict[str, int]
    age_p50_s: float
    age_p95_s: float
    age_max_s: float
