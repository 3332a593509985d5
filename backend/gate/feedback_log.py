"""Users' feedback as admins and auditors read it: every rating and comment, newest first.

The relabel queue (:meth:`backend.gate.feedback.FeedbackService.queue`) shows only open
thumbs-down; this is the whole record, thumbs-up and resolved included, so that comments
can be read at all. Read-only: nothing here writes or flushes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import Feedback, Message, User
from backend.db.paging import Keyset
from backend.errors import BadRequest

MAX_PAGE = 200
# Newest first by id (unique).
FEEDBACK = Keyset("feedback", (int,))


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One stored verdict. ``question`` is None once its conversation was deleted;
    ``user_email`` is None only if the user row is gone (feedback cascades with it)."""

    id: int
    request_id: str
    rating: str
    comment: str | None
    routed_expert: str | None
    expected_expert: str | None
    resolved: bool
    created_at: datetime
    user_email: str | None
    question: str | None


@dataclass(frozen=True, slots=True)
class FeedbackPage:
    """``entries`` newest first; ``next_cursor`` is the ``cursor`` of the next (older)
    page, None on the last one."""

    entries: list[FeedbackEntry]
    next_cursor: str | None


class FeedbackLog:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def page(
        self,
        *,
        rating: Literal["up", "down"] | None = None,
        with_comment: bool = False,
        expert: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> FeedbackPage:
        """Feedback after ``cursor`` (None: from the newest), filtered, at most ``limit`` (1-200).

        ``expert`` matches the expert that answered. Raises BadRequest for a limit out of
        range or (``invalid_cursor``) a cursor this list did not hand out.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE}", param="limit")
        query = select(Feedback, User.email).outerjoin(User, User.id == Feedback.user_id)
        if rating is not None:
            query = query.where(Feedback.rating == rating)
        if with_comment:
            query = query.where(Feedback.comment.is_not(None), Feedback.comment != "")
        if expert is not None:
            query = query.where(Feedback.routed_expert == expert)
        past = FEEDBACK.after((Feedback.id,), cursor, descending=True)
        if past is not None:
            query = query.where(past)
        found = (await self._session.execute(query.order_by(Feedback.id.desc()).limit(limit + 1))).all()
        rows, next_cursor = FEEDBACK.page(found, limit, lambda r: (r[0].id,))
        questions = await self._questions([fb.request_id for fb, _ in rows])
        entries = [
            FeedbackEntry(
                id=fb.id, request_id=fb.request_id, rating=fb.rating, comment=fb.comment,
                routed_expert=fb.routed_expert, expected_expert=fb.expected_expert,
                resolved=bool(fb.resolved), created_at=fb.created_at, user_email=email,
                question=questions.get(fb.request_id),
            )
            for fb, email in rows
        ]  # fmt: skip
        return FeedbackPage(entries, next_cursor)

    async def _questions(self, request_ids: list[str]) -> dict[str, str]:
        """The user's message of each request that still has one."""
        if not request_ids:
            return {}
        rows = await self._session.execute(
            select(Message.request_id, Message.content).where(
                Message.request_id.in_(set(request_ids)), Message.role == "user"
            )
        )
        return {request_id: content for request_id, content in rows.all()}
