"""The review queue: list, read and decide (flushes, never commits).

Who may review what: an admin every expert; a user with the ``reviewer`` role the experts
whose ``review.group`` is unset or one of the user's groups. A decision replaces the held
message's text (approve: the draft; edit: the reviewer's text; reject: a line saying so,
with the reason), is taken at most once (a second one is 409 ``review_decided``, also
when two reviewers decide at the same moment), and appends its audit event
(``review.approved`` / ``review.edited`` / ``review.rejected``) in the same transaction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.models import Message, Review, utcnow
from backend.db.paging import Keyset
from backend.errors import BadRequest, Conflict, Forbidden, NotFound
from backend.principal import Principal
from backend.review.policy import rejected
from backend.review.types import STATUS_OF, Decision, QueueStats, ReviewPage, ReviewView, Status
from experts.registry import ExpertRegistry

REVIEWER = "reviewer"
MAX_LIST = 200
# Oldest first: (created_at, id), the id breaking ties.
REVIEWS = Keyset("reviews", (datetime, str))


def is_reviewer(principal: Principal) -> bool:
    """Whether the caller may use the queue at all (admin or reviewer)."""
    return principal.is_admin or REVIEWER in principal.roles


class ReviewService:
    def __init__(self, session: AsyncSession, trail: AuditTrail, registry: ExpertRegistry) -> None:
        self._session = session
        self._trail = trail
        self._registry = registry

    def may_review(self, principal: Principal, expert: str) -> bool:
        """Admins: every expert. Reviewers: an expert with no ``review.group``, or one of
        theirs. An expert no longer in experts.yaml: admins only."""
        if principal.is_admin:
            return True
        if REVIEWER not in principal.roles or expert not in self._registry:
            return False
        group = self._registry.get(expert).review.group
        return group is None or group in principal.groups

    async def queue(
        self, principal: Principal, status: Status | None, *, limit: int = MAX_LIST, cursor: str | None = None
    ) -> ReviewPage:
        """The reviews of experts the caller may review, oldest first (``status`` None:
        all), ``limit`` (at most MAX_LIST) after ``cursor`` (None: from the oldest).
        Raises Forbidden for a caller who is neither reviewer nor admin, BadRequest
        (``invalid_cursor``) for a cursor this list did not hand out."""
        self._require_reviewer(principal)
        limit = min(limit, MAX_LIST)
        query = select(Review).order_by(Review.created_at, Review.id).limit(limit + 1)
        past = REVIEWS.after((Review.created_at, Review.id), cursor, descending=False)
        if past is not None:
            query = query.where(past)
        if status is not None:
            query = query.where(Review.status == status)
        if not principal.is_admin:
            mine = [s.name for s in self._registry if self.may_review(principal, s.name)]
            query = query.where(Review.expert.in_(mine))
        found = (await self._session.scalars(query)).all()
        rows, next_cursor = REVIEWS.page(found, limit, lambda r: (r.created_at, r.id))
        return ReviewPage(tuple(_view(r) for r in rows), next_cursor)

    async def get(self, principal: Principal, review_id: str) -> ReviewView:
        """A review the caller may review, or asked for (callers then show only the
        outcome). Raises NotFound (also for someone else's, to a non-reviewer) or
        Forbidden (a reviewer not assigned to its expert)."""
        review = await self._session.get(Review, review_id)
        if review is None or not (self.may_review(principal, review.expert) or review.asker_id == principal.user_id):
            if review is not None and is_reviewer(principal):
                raise self._not_assigned(review.expert)
            raise NotFound(f"review {review_id!r} does not exist", code="review_not_found", param="review_id")
        return _view(review)

    async def decide(
        self, principal: Principal, review_id: str, decision: Decision, *, reason: str, text: str | None = None
    ) -> ReviewView:
        """Take ``decision`` and put its text in the held message. Raises NotFound,
        Forbidden (not a reviewer of this expert), BadRequest (edit without text, no
        reason), Conflict (already decided)."""
        self._require_reviewer(principal)
        review = await self._session.get(Review, review_id)
        if review is None:
            raise NotFound(f"review {review_id!r} does not exist", code="review_not_found", param="review_id")
        if not self.may_review(principal, review.expert):
            raise self._not_assigned(review.expert)
        reason = reason.strip()
        if not reason:
            raise BadRequest("a decision needs a reason", param="reason")
        if decision == "edit" and not (text or "").strip():
            raise BadRequest("an edit needs the corrected text", param="text")
        status = STATUS_OF[decision]
        final = {"approve": review.draft, "edit": (text or "").strip(), "reject": rejected(reason)}[decision]
        now = utcnow()
        # Taken once: the row changes only while pending (two reviewers at the same
        # moment: the second one's UPDATE finds it decided and gets 409).
        taken = cast(
            CursorResult[Any],
            await self._session.execute(
                update(Review)
                .where(Review.id == review_id, Review.status == "pending")
                .values(
                    status=status,
                    final_text=final,
                    reviewer_id=principal.user_id,
                    reviewer_email=principal.email,
                    reason=reason,
                    decided_at=now,
                )
                .execution_options(synchronize_session=False)
            ),
        )
        if taken.rowcount != 1:
            raise Conflict(f"review {review_id!r} was already decided", code="review_decided", param="review_id")
        message = await self._session.get(Message, review.message_id)
        if message is not None:
            route: dict[str, Any] = dict(message.route or {})
            # The draft's marks hold only for the draft itself; an edit or a rejection is unchecked.
            route["grounding"] = review.grounding if decision == "approve" else None
            route["review"] = {"id": review.id, "status": status}
            message.content = final
            message.route = route
        await self._session.flush()
        await self._session.refresh(review)
        await self._trail.append(
            self._session,
            AuditEntry(
                action=f"review.{status}",
                outcome=Outcome.OK,
                actor=Actor.of(principal),
                request_id=review.request_id,
                status=200,
                expert=review.expert,
                payload={
                    "review_id": review.id,
                    "conversation_id": review.conversation_id,
                    "message_id": review.message_id,
                    "trigger": review.trigger,
                    "delivery": review.delivery,
                    "decision": decision,
                    "reason": reason,
                    "channel": review.channel,
                },
                prompt=review.question,
                answer=final,
            ),
        )
        return _view(review)

    async def stats(self, now: datetime | None = None) -> QueueStats:
        """Pending reviews per expert and the p50 / p95 / max of their ages."""
        now = now or utcnow()
        pending = select(Review.expert, Review.created_at).where(Review.status == "pending")
        rows = (await self._session.execute(pending)).all()
        depth: dict[str, int] = {}
        ages = []
        for expert, created in rows:
            depth[expert] = depth.get(expert, 0) + 1
            created = created if created.tzinfo is not None else created.replace(tzinfo=now.tzinfo)
            ages.append(max(0.0, (now - created).total_seconds()))
        ages.sort()
        return QueueStats(depth, _quantile(ages, 0.5), _quantile(ages, 0.95), ages[-1] if ages else 0.0)

    @staticmethod
    def _require_reviewer(principal: Principal) -> None:
        if not is_reviewer(principal):
            raise Forbidden("the review queue needs the reviewer or admin role", code="reviewer_required")

    @staticmethod
    def _not_assigned(expert: str) -> Forbidden:
        return Forbidden(f"you are not a reviewer of the {expert!r} expert", code="review_not_assigned")


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of ascending values (0 for none)."""
    if not sorted_values:
        return 0.0
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _view(review: Review) -> ReviewView:
    grounding: Mapping[str, object] | None = review.grounding
    return ReviewView(
        review_id=review.id,
        request_id=review.request_id,
        conversation_id=review.conversation_id,
        message_id=review.message_id,
        expert=review.expert,
        trigger=review.trigger,
        delivery=review.delivery,
        channel=review.channel,
        question=review.question,
        draft=review.draft,
        grounding=grounding,
        citations=tuple(review.citations or ()),
        status=review.status,  # type: ignore[arg-type]
        final_text=review.final_text,
        reviewer_id=review.reviewer_id,
        reviewer_email=review.reviewer_email,
        reason=review.reason,
        created_at=review.created_at,
        decided_at=review.decided_at,
    )
