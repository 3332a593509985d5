"""Feedback on answers and admin relabels: both become training examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.models import Conversation, Feedback, Message, TrainingExample
from backend.errors import BadRequest, NotFound
from backend.principal import Principal
from experts.registry import ExpertRegistry
from router.dataset import Example

Rating = Literal["up", "down"]
FEEDBACK_ACTION = "feedback.submitted"


RELABELED_ACTION = "router.relabeled"


def feedback_audit_entry(principal: Principal, row: Feedback) -> AuditEntry:
    """The audit event of a feedback submission, the same from every channel."""
    return AuditEntry(
        action=FEEDBACK_ACTION,
        outcome=Outcome.OK,
        actor=Actor.of(principal),
        request_id=row.request_id,
        status=201,
        expert=row.routed_expert,
        payload={"feedback_id": row.id, "rating": row.rating, "expected_expert": row.expected_expert},
    )


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    id: int
    request_id: str
    rating: str
    comment: str | None
    expected_expert: str | None
    routed_expert: str | None
    question: str
    resolved: bool


class FeedbackService:
    """Flushes, never commits. Audits what it changes (feedback, relabels) in the same
    session, so every channel that calls it writes the same events."""

    def __init__(self, session: AsyncSession, registry: ExpertRegistry, audit: AuditTrail) -> None:
        self._session = session
        self._registry = registry
        self._audit = audit

    def _check_expert(self, name: str | None, param: str) -> None:
        if name is not None and name not in self._registry:
            raise BadRequest(
                f"unknown expert {name!r}; experts are {', '.join(self._registry.names)}",
                param=param,
            )

    async def _question(self, request_id: str, principal: Principal | None) -> tuple[Message, Message | None]:
        """The user's message of ``request_id`` (and the answer), owned by ``principal``."""
        query = (
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.request_id == request_id)
        )
        if principal is not None:
            query = query.where(Conversation.user_id == principal.user_id)
        rows = list((await self._session.scalars(query)).all())
        question = next((m for m in rows if m.role == "user"), None)
        if question is None:
            raise NotFound(
                f"no answer with request id {request_id!r}",
                code="request_not_found",
                param="request_id",
            )
        return question, next((m for m in rows if m.role == "assistant"), None)

    async def submit(
        self,
        principal: Principal,
        request_id: str,
        rating: Rating,
        comment: str | None = None,
        expected_expert: str | None = None,
    ) -> Feedback:
        """Record (or update) the caller's feedback on one of their answers.

        "Should have gone to X" also becomes a training example. Raises NotFound for
        someone else's request, BadRequest for an unknown expert.
        """
        self._check_expert(expected_expert, "expected_expert")
        question, answer = await self._question(request_id, principal)
        row = await self._session.scalar(
            select(Feedback).where(Feedback.request_id == request_id, Feedback.user_id == principal.user_id)
        )
        if row is None:
            row = Feedback(request_id=request_id, user_id=principal.user_id, rating=rating, resolved=False)
            self._session.add(row)
        row.rating, row.comment, row.expected_expert = rating, comment, expected_expert
        row.routed_expert = answer.expert if answer else None
        if expected_expert is not None and expected_expert != row.routed_expert:
            await self._upsert_example(question.content, expected_expert, "feedback", request_id, principal.user_id)
            row.resolved = True
        await self._session.flush()
        await self._audit.append(self._session, feedback_audit_entry(principal, row))
        return row

    async def relabel(self, admin: Principal, request_id: str, domain: str) -> TrainingExample:
        """An admin's label for a request's question; resolves its open feedback."""
        self._check_expert(domain, "domain")
        question, _ = await self._question(request_id, None)
        example = await self._upsert_example(question.content, domain, "admin", request_id, admin.user_id)
        for fb in (await self._session.scalars(select(Feedback).where(Feedback.request_id == request_id))).all():
            fb.resolved = True
        await self._session.flush()
        await self._audit.append(
            self._session,
            AuditEntry(
                action=RELABELED_ACTION, outcome=Outcome.OK, actor=Actor.of(admin), status=200,
                request_id=request_id, payload={"domain": domain, "example_id": example.id},
            ),
        )  # fmt: skip
        return example

    async def _upsert_example(
        self, text: str, domain: str, source: str, request_id: str, user_id: int
    ) -> TrainingExample:
        row = await self._session.scalar(select(TrainingExample).where(TrainingExample.request_id == request_id))
        if row is None:
            row = TrainingExample(text=text, domain=domain, source=source, request_id=request_id, user_id=user_id)
            self._session.add(row)
        elif source == "admin" or row.source != "admin":  # an admin's label outranks a user's
            row.domain, row.source, row.user_id = domain, source, user_id
        await self._session.flush()
        return row

    async def queue(self, limit: int = 100) -> list[FeedbackItem]:
        """Open thumbs-down feedback, newest first: what an admin should relabel.

        Feedback on a conversation its owner has since deleted is left out: its question
        is gone, so there is nothing to relabel (and one such row must not fail the queue).
        """
        asked = select(Message.id).where(Message.request_id == Feedback.request_id, Message.role == "user")
        rows = (
            await self._session.scalars(
                select(Feedback)
                .where(Feedback.resolved.is_(False), Feedback.rating == "down", asked.exists())
                .order_by(Feedback.id.desc())
                .limit(limit)
            )
        ).all()
        items = []
        for fb in rows:
            try:
                question, _ = await self._question(fb.request_id, None)
            except NotFound:  # deleted between the two reads
                continue
            items.append(
                FeedbackItem(
                    fb.id, fb.request_id, fb.rating, fb.comment, fb.expected_expert, fb.routed_expert,
                    question.content, fb.resolved,
                )
            )  # fmt: skip
        return items

    async def examples(self) -> list[Example]:
        """Every stored example whose expert still exists."""
        rows = (await self._session.scalars(select(TrainingExample).order_by(TrainingExample.id))).all()
        return [Example(r.text, r.domain) for r in rows if r.domain in self._registry]
