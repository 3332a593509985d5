"""Frozen values of the review queue (no ORM rows cross this package's boundary)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Status = Literal["pending", "approved", "edited", "rejected"]
Decision = Literal["approve", "edit", "reject"]
Trigger = Literal["on_fail", "always", "sample"]
Delivery = Literal["hold", "deliver_with_notice"]

STATUS_OF: Mapping[Decision, Status] = {"approve": "approved", "edit": "edited", "reject": "rejected"}


@dataclass(frozen=True, slots=True)
class HeldReview:
    """An answer the expert's policy sends to review, as the pipeline records it.

    ``draft``: the model's answer (after the grounding policy); ``shown``: what the asker
    gets now (the placeholder for ``hold``, the draft and a notice for
    ``deliver_with_notice``); ``grounding``: the check of the draft (offsets into it).
    """

    review_id: str
    trigger: Trigger
    delivery: Delivery
    draft: str
    shown: str
    grounding: Mapping[str, object] | None

    @property
    def holds(self) -> bool:
        return self.delivery == "hold"

    @property
    def shown_grounding(self) -> Mapping[str, object] | None:
        """The grounding record that goes with ``shown``: none for a placeholder (its marks
        would quote the draft); the draft's own when the draft is delivered."""
        return None if self.holds else self.grounding

    def ref(self) -> dict[str, str]:
        """The ``review`` object of the response and the stored route."""
        return {"id": self.review_id, "status": "pending"}


@dataclass(frozen=True, slots=True)
class ReviewView:
    """One review as a reviewer sees it."""

    review_id: str
    request_id: str
    conversation_id: str
    message_id: int
    expert: str
    trigger: str
    delivery: str
    channel: str
    question: str
    draft: str
    grounding: Mapping[str, object] | None
    citations: Sequence[Mapping[str, object]]
    status: Status
    final_text: str | None
    reviewer_id: int | None
    reviewer_email: str | None
    reason: str | None
    created_at: datetime
    decided_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReviewPage:
    """Reviews oldest first; ``next_cursor`` None on the last page."""

    reviews: tuple[ReviewView, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Pending reviews: how many per expert, and how long they have waited (seconds)."""

    depth: Mapping[str, int]
    age_p50_s: float
    age_p95_s: float
    age_max_s: float
