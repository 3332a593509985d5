"""API schemas for ``/api/v1/safety``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from backend.api.schemas.paging import NextCursor
from backend.safety.types import FlagStats, FlagView

LabelOut = Literal["benign", "injection", "jailbreak", "extraction"]
ActionOut = Literal["allow", "flag", "general", "refuse"]
CategoryOut = Literal["injection", "jailbreak", "extraction"]


class SafetyFlagOut(BaseModel):
    """A request the input safety check flagged. ``score``: the flagged category's
    calibrated score; ``scores``: every category's; ``action``: what the experts'
    policy did; ``excerpt``: the last user message as the audit trail keeps free text
    (PII redacted; null under the ``hash`` text policy); ``label``: an admin's verdict
    (null: not reviewed; benign: a false positive); ``audit_seq``: the request's audit
    event (null until chained)."""

    id: int
    request_id: str
    created_at: datetime
    user_id: int | None = None
    user_email: str | None = None
    channel: str
    expert: str
    category: CategoryOut
    score: float
    action: ActionOut
    scores: dict[str, float]
    rules: list[str]
    model: str
    excerpt: str | None = None
    label: LabelOut | None = None
    labelled_by: str | None = None
    labelled_at: datetime | None = None
    audit_seq: int | None = None

    @classmethod
    def of(cls, view: FlagView) -> SafetyFlagOut:
        return cls.model_validate(
            {
                "id": view.flag_id, "request_id": view.request_id, "created_at": view.created_at,
                "user_id": view.user_id, "user_email": view.user_email, "channel": view.channel,
                "expert": view.expert, "category": view.category, "score": view.score, "action": view.action,
                "scores": dict(view.scores), "rules": list(view.rules), "model": view.model,
                "excerpt": view.excerpt, "label": view.label, "labelled_by": view.labelled_by,
                "labelled_at": view.labelled_at, "audit_seq": view.audit_seq,
            }
        )  # fmt: skip


class SafetyFlagPage(BaseModel):
    data: list[SafetyFlagOut]
    next_cursor: NextCursor


class SafetyLabelIn(BaseModel):
    """An admin's verdict: ``benign`` marks a false positive, a category the right one
    (null clears the label)."""

    model_config = ConfigDict(extra="forbid")

    label: LabelOut | None


class SafetyFlagCell(BaseModel):
    expert: str
    category: str
    count: int


class SafetyFlagStats(BaseModel):
    """Flags created in ``[since, until)``: per expert and category (``cells``, largest
    first), summed per expert and per category, per action, and per admin label."""

    since: datetime
    until: datetime
    total: int
    cells: list[SafetyFlagCell]
    by_expert: dict[str, int]
    by_category: dict[str, int]
    by_action: dict[str, int]
    labels: dict[str, int]
    unlabelled: int

    @classmethod
    def of(cls, stats: FlagStats) -> SafetyFlagStats:
        by_expert: dict[str, int] = {}
        by_category: dict[str, int] = {}
        for cell in stats.cells:
            by_expert[cell.expert] = by_expert.get(cell.expert, 0) + cell.count
            by_category[cell.category] = by_category.get(cell.category, 0) + cell.count
        return cls(
            since=stats.since, until=stats.until, total=stats.total,
            cells=[SafetyFlagCell(expert=c.expert, category=c.category, count=c.count) for c in stats.cells],
            by_expert=by_expert, by_category=by_category, by_action=dict(stats.by_action),
            labels=dict(stats.labels), unlabelled=stats.unlabelled,
        )  # fmt: skip
