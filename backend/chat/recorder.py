"""What the pipeline writes: the exchange (user and assistant messages) with its
audit event (and, for an answer sent to a person, its review row) in one transaction,
the audit event of a request that failed or was refused, and of a routing-only request.
One place builds the trace of a request
(backend/audit/chat.py turns it into the event; the route record is built once there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.chat import ROUTE_ACTION, ChatTrace, chat_entry, route_record
from backend.audit.types import CLIENT_CLOSED, AuditEntry
from backend.audit.writer import AuditTrail, mark_recorded
from backend.chat.exchanges import ConversationService, Exchange
from backend.chat.types import Routed
from backend.db.models import Message, Review, utcnow
from backend.db.session import Database
from backend.db.writes import Rows, Writes
from backend.errors import AppError, to_app_error
from backend.knowledge.types import NO_RETRIEVAL, Retrieval
from backend.observability.metrics import Metrics
from backend.observability.tracing import describe_conversation, stage
from backend.review.types import HeldReview
from backend.safety.record import INSERT_FLAG, flag_row, write_flag
from experts.registry import ExpertRegistry
from experts.service import ExpertService
from experts.types import FallbackStep, Usage

log = logging.getLogger(__name__)


class ChatRecorder:
    """Writes what a request leaves behind. ``writes`` commits each exchange
    (backend/db/writes.py: its own transaction, or group commit when configured)."""

    def __init__(
        self,
        db: Database,
        writes: Writes,
        audit: AuditTrail,
        registry: ExpertRegistry,
        experts: ExpertService,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._writes = writes
        self._audit = audit
        self._registry = registry
        self._experts = experts
        self._metrics = metrics

    @property
    def writes(self) -> Writes:
        return self._writes

    async def finish(self) -> None:
        """Wait for the exchanges queued for the group commit (at shutdown, before the
        audit chainer's last drain, so that their events are chained too)."""
        await self._writes.aclose()

    async def route(self, routed: Routed) -> None:
        """Audit a request that only asked where it would go (/v1/route): the text was
        sent to us and a decision made about it, so it is one event like any request."""
        chat = routed.input
        trace = ChatTrace(
            request_id=chat.request_id,
            principal=chat.principal,
            prompt=chat.last_user_text,
            decision=routed.decision,
            latency_ms={"guard": chat.guard_ms, "route": routed.route_ms},
            pii=chat.pii,
            safety=routed.safety.record() if routed.safety is not None else None,
        )
        await self._record(chat_entry(trace, self._audit.redact_free_text, ROUTE_ACTION), self._flag(routed, None))

    @stage("record", describe_conversation)
    async def exchange(
        self,
        routed: Routed,
        expert: str,
        text: str,
        usage: Usage,
        fallbacks: tuple[FallbackStep, ...],
        *,
        generate_ms: float,
        upstream_model: str,
        finish_reason: str,
        stream: bool,
        retrieval: Retrieval = NO_RETRIEVAL,
        grounding: Mapping[str, object] | None = None,
        review: HeldReview | None = None,
        output: Mapping[str, int] | None = None,
        cache: Mapping[str, object] | None = None,
    ) -> str:
        """Store the exchange and its audit event in one transaction (both or neither).

        ``text`` is what the asker was sent. With ``review``, the review row is written in
        the same transaction: the stored message holds ``text`` (``review.shown``), the
        review row the draft and its grounding; the audit event records the draft.
        """
        chat, decision = routed.input, routed.decision
        stored_grounding = grounding if review is None else review.shown_grounding
        route = {
            **route_record(decision, expert),
            "route_ms": round(routed.route_ms, 3),
            "fallbacks": [{"expert": f.expert, "error": f.error} for f in fallbacks],
            # What the caller was shown (only chunks it may see) and what was searched.
            "citations": [
                {"number": p.number, "title": p.title, "source": p.source,
                 "snippet": p.snippet, "score": p.score, "location": p.location,
                 "document_id": p.document_id}
                for p in retrieval.passages
            ],
            "retrieval": retrieval.record(),
            "grounding": stored_grounding,  # the marks the web UI shows when the conversation reopens
            "upstream_model": upstream_model,  # the model named under the answer when it reopens
            "safety": routed.safety.record() if routed.safety is not None else None,
        }  # fmt: skip
        if review is not None:
            route["review"] = review.ref()
        if cache is not None:  # the response cache's part (a replayed answer names its source)
            route["cache"] = dict(cache)
        exchange = Exchange(
            request_id=chat.request_id,
            user_text=chat.last_user_text,
            answer_text=text,
            expert=expert,
            route=route,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        flag = self._flag(routed, expert)  # built once: the unit below may run again

        async def write(session: AsyncSession, rows: Rows) -> tuple[str, ChatTrace]:
            if review is None:
                conversation_id = await ConversationService(session).record(
                    chat.principal, chat.conversation_id, exchange, rows
                )
            else:  # executed here, not left in ``rows``: the review names the message's id
                conversation_id = await ConversationService(session).record(
                    chat.principal, chat.conversation_id, exchange
                )
                await self._queue_review(session, routed, expert, conversation_id, review, route["citations"])
            trace = self.trace(
                routed,
                expert,
                generate_ms,
                stream=stream,
                usage=usage,
                fallbacks=fallbacks,
                answer=text if review is None else review.draft,
                upstream_model=upstream_model,
                finish_reason=finish_reason,
                conversation_id=conversation_id,
                retrieval=retrieval.record(),
                grounding=grounding,
                output=output,
                cache=cache,
                review=None if review is None else {
                    "id": review.review_id, "trigger": review.trigger,
                    "delivery": review.delivery, "status": "pending",
                },
            )  # fmt: skip
            # One outbox row, no lock: the event commits with the exchange and the chainer
            # gives it its place in the chain (docs/governance.md).
            await self._audit.append_later(session, chat_entry(trace, self._audit.redact_free_text), rows)
            if flag is not None:  # the request's safety flag commits with its event
                rows.add(INSERT_FLAG, flag)
            return conversation_id, trace

        # Committed by `writes` (backend/db/writes.py), the rows left in `rows` last.
        conversation_id, trace = await self._writes.run(write)
        if self._metrics is not None:
            self._metrics.observe_chat(trace)
        return conversation_id

    @staticmethod
    async def _queue_review(
        session: AsyncSession,
        routed: Routed,
        expert: str,
        conversation_id: str,
        review: HeldReview,
        citations: object,
    ) -> None:
        """The review row of the assistant message just written (same transaction)."""
        chat = routed.input
        message_id = await session.scalar(
            select(Message.id).where(
                Message.conversation_id == conversation_id,
                Message.request_id == chat.request_id,
                Message.role == "assistant",
            )
        )
        await session.execute(
            insert(Review).values(
                id=review.review_id,
                request_id=chat.request_id,
                conversation_id=conversation_id,
                message_id=message_id,
                asker_id=chat.principal.user_id,
                channel=chat.principal.channel,
                expert=expert,
                trigger=review.trigger,
                delivery=review.delivery,
                question=chat.last_user_text,
                draft=review.draft,
                grounding=None if review.grounding is None else dict(review.grounding),
                citations=citations,
                status="pending",
                created_at=utcnow(),
            )
        )

    # -- audit -------------------------------------------------------------------
    def trace(
        self,
        routed: Routed,
        expert: str,
        generate_ms: float,
        *,
        stream: bool,
        usage: Usage | None = None,
        fallbacks: tuple[FallbackStep, ...] = (),
        answer: str | None = None,
        upstream_model: str | None = None,
        finish_reason: str | None = None,
        conversation_id: str | None = None,
        error: AppError | None = None,
        retrieval: Mapping[str, object] | None = None,
        grounding: Mapping[str, object] | None = None,
        review: Mapping[str, object] | None = None,
        output: Mapping[str, int] | None = None,
        cache: Mapping[str, object] | None = None,
    ) -> ChatTrace:
        chat = routed.input
        endpoint = self._experts.endpoint(expert, routed.replica if expert == routed.decision.expert else None)
        return ChatTrace(
            request_id=chat.request_id,
            principal=chat.principal,
            prompt=chat.last_user_text,
            decision=routed.decision,
            latency_ms={
                "guard": chat.guard_ms,
                "route": routed.route_ms,
                "generate": generate_ms,
                "total": (time.perf_counter() - chat.started) * 1000,
            },
            pii=chat.pii,
            pii_policy=self._registry.get(expert).pii_policy,
            stream=stream,
            expert=expert,
            model=endpoint.model,
            upstream_model=upstream_model,
            endpoint=endpoint.api_base,
            usage=usage,
            fallbacks=fallbacks,
            answer=answer,
            finish_reason=finish_reason,
            conversation_id=conversation_id or chat.conversation_id,
            error=error,
            retrieval=retrieval or {},
            grounding=grounding,
            review=review,
            output=output,
            cache=cache,
            safety=routed.safety.record() if routed.safety is not None else None,
        )

    async def failure(
        self,
        routed: Routed,
        exc: Exception | None,
        started: float,
        *,
        stream: bool,
        expert: str | None = None,
        fallbacks: tuple[FallbackStep, ...] = (),
        partial: str = "",
    ) -> None:
        """Audit a request that failed while generating (``exc`` None: client went away).

        In its own transaction: the request's rows were never written. If even that
        fails, the failure is logged and the original error still propagates.
        """
        if exc is None:
            error = AppError("the client closed the connection", code="client_closed")
            error.status = CLIENT_CLOSED
        else:
            error = to_app_error(exc) or AppError("internal error")
        trace = self.trace(
            routed,
            expert or routed.decision.expert,
            (time.perf_counter() - started) * 1000,
            stream=stream,
            fallbacks=fallbacks,
            answer=partial or None,
            error=error,
        )
        if self._metrics is not None:
            self._metrics.observe_chat(trace)
        try:
            await self._record(chat_entry(trace, self._audit.redact_free_text), self._flag(routed, expert))
        except Exception:
            log.exception("could not audit failed request %s", routed.input.request_id)
            return
        if exc is not None:
            mark_recorded(exc)

    # -- the safety flag (backend/safety) ------------------------------------------
    def _flag(self, routed: Routed, expert: str | None) -> dict[str, object] | None:
        """The request's ``safety_flags`` row when its input check flagged it, else None."""
        chat = routed.input
        return flag_row(
            routed.safety, request_id=chat.request_id, principal=chat.principal,
            expert=expert or routed.decision.expert, text=chat.last_user_text, trail=self._audit,
        )  # fmt: skip

    async def _record(self, entry: AuditEntry, flag: dict[str, object] | None) -> None:
        """``entry`` in a transaction of its own, with the request's safety flag (both or
        neither; the flag first: a trail that chains holds its lock from the append on)."""
        async with self._db.transaction() as session:
            if flag is not None:
                await write_flag(session, flag)
            await self._audit.append(session, entry)
