"""/api/v1/reviews: the human review queue. Parse, call ReviewService, map."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query

from backend.api.deps import AuditDep, DbDep, PrincipalDep, RegistryDep, SettingsDep
from backend.api.schemas.paging import CursorParam
from backend.api.schemas.reviews import (
    ReviewDecisionIn,
    ReviewList,
    ReviewOut,
    ReviewOutcome,
    ReviewQueueStats,
    StatusOut,
)
from backend.errors import Forbidden
from backend.review.notify import ReviewNotifier
from backend.review.service import MAX_LIST, ReviewService
from backend.review.types import ReviewView
from backend.slack.review import post_review_outcome

routes = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])


def _out(view: ReviewView) -> ReviewOut:
    return ReviewOut.model_validate(
        {
            "id": view.review_id,
            "request_id": view.request_id,
            "conversation_id": view.conversation_id,
            "message_id": view.message_id,
            "expert": view.expert,
            "trigger": view.trigger,
            "delivery": view.delivery,
            "channel": view.channel,
            "question": view.question,
            "draft": view.draft,
            "grounding": view.grounding,
            "citations": list(view.citations),
            "status": view.status,
            "final_text": view.final_text,
            "reviewer_email": view.reviewer_email,
            "reason": view.reason,
            "created_at": view.created_at,
            "decided_at": view.decided_at,
        }
    )


@routes.get("", response_model=ReviewList, operation_id="listReviews")
async def list_reviews(
    principal: PrincipalDep,
    db: DbDep,
    audit: AuditDep,
    registry: RegistryDep,
    status: Annotated[StatusOut | None, Query()] = "pending",
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    cursor: CursorParam = None,
) -> ReviewList:
    """Reviewers and admins: the reviews of the experts they may review, oldest first."""
    async with db.session() as session:
        page = await ReviewService(session, audit, registry).queue(principal, status, limit=limit, cursor=cursor)
    return ReviewList(data=[_out(v) for v in page.reviews], next_cursor=page.next_cursor)


@routes.get("/stats", response_model=ReviewQueueStats, operation_id="getReviewQueueStats")
async def review_stats(principal: PrincipalDep, db: DbDep, audit: AuditDep, registry: RegistryDep) -> ReviewQueueStats:
    """Admins, auditors and reviewers: the queue's depth per expert and its waiting times
    (the console dashboard; the same figures are on /metrics)."""
    if not principal.roles & {"admin", "auditor", "reviewer"}:
        raise Forbidden("the review queue's figures need the admin, auditor or reviewer role", code="forbidden")
    async with db.session() as session:
        stats = await ReviewService(session, audit, registry).stats()
    return ReviewQueueStats(
        pending=sum(stats.depth.values()), by_expert=dict(stats.depth),
        age_p50_s=stats.age_p50_s, age_p95_s=stats.age_p95_s, age_max_s=stats.age_max_s,
    )  # fmt: skip


@routes.get("/{review_id}", response_model=ReviewOut | ReviewOutcome, operation_id="getReview")
async def get_review(
    review_id: str, principal: PrincipalDep, audit: AuditDep, registry: RegistryDep, db: DbDep
) -> ReviewOut | ReviewOutcome:
    """A reviewer of its expert (or an admin) reads the whole review; its asker, the outcome."""
    async with db.session() as session:
        service = ReviewService(session, audit, registry)
        view = await service.get(principal, review_id)
        whole = service.may_review(principal, view.expert)
    if whole:
        return _out(view)
    return ReviewOutcome(
        id=view.review_id, status=view.status, final_text=view.final_text, reason=view.reason,
        decided_at=view.decided_at,
    )  # fmt: skip


@routes.post("/{review_id}", response_model=ReviewOut, operation_id="decideReview")
async def decide_review(
    review_id: str,
    body: ReviewDecisionIn,
    principal: PrincipalDep,
    db: DbDep,
    settings: SettingsDep,
    audit: AuditDep,
    registry: RegistryDep,
    later: BackgroundTasks,
) -> ReviewOut:
    """Approve, edit or reject a pending review (409 once decided); audited. After the
    decision commits, the asker's Slack thread and the review webhook hear of it."""
    async with db.transaction() as session:
        view = await ReviewService(session, audit, registry).decide(
            principal, review_id, body.decision, reason=body.reason, text=body.text
        )
    # The webhook, and the Slack thread the question came from (each when configured).
    notifier = ReviewNotifier(settings, functools.partial(post_review_outcome, settings, db))
    later.add_task(notifier.decided, view)
    return _out(view)
