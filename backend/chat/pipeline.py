"""The request pipeline: the one place a chat request becomes an answer.

Stages (each a method with typed input and output; what each decided lands in the
stored route record):

1. authenticate   -> Principal              (done by the API dependency)
2. guard input    -> ChatInput              size limits, control characters
3. route          -> RoutingDecision        gate + policy, with the caller's ACL
3b/c. admit       -> Routed + Grant         quotas (429 / degrade), then a capacity slot
                                            on the expert or its overflow target (503)
4. retrieve       -> Retrieval              the decided expert's index (+ a close second
                                            top-k expert's), ACL-filtered; numbered passages
5. generate       -> ExpertAnswer / stream  the expert's LLM, fallback chain to general
6. record         -> conversation id        user + assistant messages, one transaction
7. respond                                  done by the API layer from ChatResult
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.chat import ROUTE_ACTION, ChatTrace, chat_entry
from backend.audit.types import CLIENT_CLOSED
from backend.audit.writer import AuditTrail, mark_recorded
from backend.capacity.service import CapacityService
from backend.capacity.types import Slot
from backend.chat.conversations import ConversationService, Exchange
from backend.db.group_commit import GroupCommit, Rows
from backend.db.session import Database
from backend.errors import AppError, BadRequest, PayloadTooLarge, to_app_error
from backend.guard.policy import NO_PII, PiiGuard, PiiReport
from backend.identity.types import Principal
from backend.knowledge.service import DomainQuery, KnowledgeService, QueryVector
from backend.knowledge.types import NO_RETRIEVAL, Retrieval
from backend.observability.metrics import Metrics
from backend.observability.tracing import (
    describe_answer,
    describe_conversation,
    describe_retrieval,
    describe_routed,
    describe_stream_event,
    stage,
    traced_stream,
)
from backend.quota.service import Grant, QuotaService, estimate_tokens
from backend.routing.batcher import RouteBatcher
from experts.registry import AUTO, GENERALIST, ExpertRegistry
from experts.service import ExpertService, StreamStart
from experts.types import ChatMessage, ExpertAnswer, FallbackStep, StreamDone, TextDelta, Usage
from router.service import Router
from router.types import Reason, RouteRequest, RoutingDecision

log = logging.getLogger(__name__)
T = TypeVar("T")
_CONTROL = {i: None for i in range(32) if chr(i) not in "\n\r\t"}
HISTORY_TURNS = 3


@dataclass(frozen=True, slots=True)
class Limits:
    max_input_chars: int
    max_messages: int
    deadline_s: float | None = None  # one per request, from its guard to its answer


# Of a request's deadline, what is kept to audit a refusal and send it: the experts get
# the rest (bench/hardening.py hang: p99 5.55 s at a 5 s deadline without this margin).
REPLY_MARGIN_S = 0.3
# Above this many characters the PII scan runs in a worker thread, not on the event loop.
SCAN_INLINE_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class ChatInput:
    """A validated chat request (stage 2 output)."""

    principal: Principal
    model: str
    messages: tuple[ChatMessage, ...]
    conversation_id: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    pii: PiiReport = NO_PII  # what the guard found (counts per type; never the values)
    started: float = field(default_factory=time.perf_counter)  # for latency_ms.total
    guard_ms: float = 0.0
    deadline: float | None = None  # time.monotonic() by which an answer must begin

    @property
    def last_user_text(self) -> str:
        return next(m.content for m in reversed(self.messages) if m.role == "user")


@dataclass(frozen=True, slots=True)
class Routed:
    """Stage 3 output: the input and where it goes (``slot``: the expert capacity held
    for it from admission until generation ends; None before admission)."""

    input: ChatInput
    decision: RoutingDecision
    route_ms: float
    slot: Slot | None = None
    query: QueryVector | None = None  # the router's vector of the text, reused by retrieval


@dataclass(frozen=True, slots=True)
class ChatResult:
    request_id: str
    decision: RoutingDecision
    answer: ExpertAnswer
    conversation_id: str
    retrieval: Retrieval = NO_RETRIEVAL


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """First event of a streamed answer: who answers (after any fallback)."""

    expert: str
    fallbacks: tuple[FallbackStep, ...]
    retrieval: Retrieval = NO_RETRIEVAL


@dataclass(frozen=True, slots=True)
class StreamFinished:
    """Last event of a streamed answer, after the exchange has been stored."""

    finish_reason: str
    usage: Usage
    model: str
    conversation_id: str
    retrieval: Retrieval = NO_RETRIEVAL


class ChatPipeline:
    def __init__(
        self,
        db: Database,
        router: Router,
        registry: ExpertRegistry,
        experts: ExpertService,
        capacity: CapacityService,
        limits: Limits,
        *,
        audit: AuditTrail,
        pii: PiiGuard,
        knowledge: KnowledgeService | None = None,
        passages: int = 4,
        metrics: Metrics | None = None,
        quota: QuotaService | None = None,
    ) -> None:
        self._db = db
        self._writes = GroupCommit(db)
        self._router = router
        self._batcher = RouteBatcher(router)
        self._registry = registry
        self._experts = experts
        self._capacity = capacity
        self._limits = limits
        self._audit = audit
        self._pii = pii
        self._knowledge = knowledge
        self._passages = passages
        self._metrics = metrics
        self._quota = quota

    async def finish_writes(self) -> None:
        """Wait for the exchanges queued for the group commit (at shutdown, before the
        audit chainer's last drain, so that their events are chained too)."""
        await self._writes.aclose()

    # -- stage 2 -----------------------------------------------------------------
    def guard(
        self,
        principal: Principal,
        model: str,
        messages: Sequence[tuple[str, str]],
        *,
        conversation_id: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatInput:
        """Check sizes and clean the text. Raises PayloadTooLarge, BadRequest. The PII scan
        (CPU work that grows with the text) is done by :meth:`route`, off the event loop."""
        started = time.perf_counter()
        deadline = None
        if self._limits.deadline_s is not None:  # the experts stop early enough to record and reply in time
            deadline = time.monotonic() + max(0.1, self._limits.deadline_s - REPLY_MARGIN_S)
        if len(messages) > self._limits.max_messages:
            raise PayloadTooLarge(
                f"{len(messages)} messages is more than the limit of {self._limits.max_messages}",
                param="messages",
            )
        total = sum(len(text) for _, text in messages)
        if total > self._limits.max_input_chars:
            raise PayloadTooLarge(
                f"the messages hold {total} characters; "
                f"the limit is {self._limits.max_input_chars}",
                param="messages",
            )
        cleaned = []
        for role, text in messages:
            role = "system" if role == "developer" else role
            if role not in ("system", "user", "assistant"):
                raise BadRequest(f"unsupported message role {role!r}", param="messages")
            cleaned.append(ChatMessage(role, text.translate(_CONTROL)))  # type: ignore[arg-type]
        if not any(m.role == "user" and m.content.strip() for m in cleaned):
            raise BadRequest("there is no non-empty user message", param="messages")
        return ChatInput(
            principal=principal,
            model=model,
            messages=tuple(cleaned),
            conversation_id=conversation_id,
            max_tokens=max_tokens,
            temperature=temperature,
            started=started,
            guard_ms=(time.perf_counter() - started) * 1000,
            deadline=deadline,
        )

    async def _scan(self, chat: ChatInput) -> ChatInput:
        """``chat`` with what the PII scan found. The policy is applied per expert on the
        way out (PiiGuard.outbound); here we only note what is there, for the audit
        event. A long text is scanned in a worker thread: other requests keep being
        served meanwhile."""
        started = time.perf_counter()
        texts = [m.content for m in chat.messages if m.role != "assistant"]
        if sum(map(len, texts)) <= SCAN_INLINE_CHARS:
            report = self._pii.scan(texts)
        else:
            report = await anyio.to_thread.run_sync(self._pii.scan, texts)
        return replace(chat, pii=report, guard_ms=chat.guard_ms + (time.perf_counter() - started) * 1000)

    # -- stage 3 -----------------------------------------------------------------
    @stage("route", describe_routed)
    async def route(self, chat: ChatInput) -> Routed:
        """Decide the expert. Raises NotFound (conversation, model) and Forbidden."""
        chat = await self._scan(chat)
        previous = None
        if chat.conversation_id is not None:
            async with self._db.session() as session:
                convs = ConversationService(session)
                await convs.get_owned(chat.conversation_id, chat.principal)
                previous = await convs.last_expert(chat.conversation_id)
        allowed = frozenset(s.name for s in self._registry if s.allows(chat.principal.groups))
        history = tuple(m.content for m in chat.messages[:-1] if m.role == "user")[-HISTORY_TURNS:]
        request = RouteRequest(
            text=chat.last_user_text,
            history=history,
            previous_expert=previous,
            allowed=allowed,
            requested=None if chat.model == AUTO else chat.model,
        )  # capacity is not read here: admission holds an exact slot (stage 3c)
        started = time.perf_counter()
        # The encoder is CPU-bound: it runs off the event loop, batched with concurrent requests.
        encoded = await self._batcher.route(request)
        query = None if encoded.vector is None or encoded.model is None else QueryVector(encoded.model, encoded.vector)
        return Routed(chat, encoded.decision, (time.perf_counter() - started) * 1000, query=query)

    async def record_route(self, routed: Routed) -> None:
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
        )
        await self._audit.record(self._db, chat_entry(trace, self._audit.redact_free_text, ROUTE_ACTION))

    # -- stage 4 -----------------------------------------------------------------
    @stage("retrieve", describe_retrieval)
    async def retrieve(self, routed: Routed) -> Retrieval:
        """Passages from the decided expert's index, ACL-filtered by the caller's groups.

        When the decision's top-k holds a second expert with an index that the caller
        may use, its index is searched too and its scores are weighted by its gate
        probability relative to the decided expert's. The generalist has no index.
        """
        chat, decision = routed.input, routed.decision
        spec = self._registry.get(decision.expert)
        if self._knowledge is None or spec.index is None:
            return NO_RETRIEVAL
        groups = chat.principal.groups
        own = decision.probabilities.get(decision.expert, 0.0)
        targets = [DomainQuery(spec.index)]
        for other in decision.top_k:
            peer = self._registry.get(other) if other in self._registry else None
            if peer is None or other == decision.expert or not peer.index:
                continue
            if not peer.allows(groups):
                continue
            weight = min(1.0, decision.probabilities.get(other, 0.0) / own) if own > 0 else 0.0
            if weight > 0 and peer.index not in {t.domain for t in targets}:
                targets.append(DomainQuery(peer.index, weight))
        return await self._knowledge.retrieve(
            chat.last_user_text, targets, groups, self._passages, vector=routed.query
        )

    # -- stage 3b: quotas (backend/quota), 3c: capacity (backend/capacity) ------
    @stage("admit", describe_routed)
    async def admit(self, routed: Routed) -> tuple[Routed, Grant | None]:
        """Charge the caller's quotas once (estimated tokens), then hold a capacity slot.

        Raises QuotaExceeded (429), QuotaUnavailable (503), ExpertAtCapacity (503 with
        Retry-After) or CapacityUnavailable (503), each audited. Over a ``degrade`` policy
        the request goes to the generalist with reason ``degraded``; a full expert
        overflows by the router's rule (reason ``overflow``). The returned Routed holds
        the slot; :meth:`complete` / :meth:`stream` release it.
        """
        grant = None
        if self._quota is not None:
            chat = routed.input
            max_tokens = chat.max_tokens or self._registry.get(routed.decision.expert).params.max_tokens
            started = time.perf_counter()
            try:
                estimate = estimate_tokens(chat.messages, max_tokens)
                grant = await self._quota.admit(chat.principal, chat.request_id, estimate)
            except Exception as exc:
                await self._record_failure(routed, exc, started, stream=False)
                raise
            if grant.degraded and routed.decision.expert != GENERALIST:
                decision = replace(routed.decision, expert=GENERALIST, reason=Reason.DEGRADED)
                routed = replace(routed, decision=decision)
        return await self._hold_capacity(routed, grant), grant

    async def _hold_capacity(self, routed: Routed, grant: Grant | None) -> Routed:
        started = time.perf_counter()
        try:
            decision, slot = await self._capacity.admit(routed.decision, routed.input.request_id)
        except Exception as exc:
            with anyio.CancelScope(shield=True):
                await self._settle(grant, 0)  # nothing will be generated
            await self._record_failure(routed, exc, started, stream=False)
            raise
        return replace(routed, decision=decision, slot=slot)

    async def _settle(self, grant: Grant | None, used: int) -> None:
        if self._quota is not None and grant is not None:
            await self._quota.settle(grant, used)

    # -- stages 5-6 --------------------------------------------------------------
    async def complete(self, routed: Routed, grant: Grant | None = None) -> ChatResult:
        """Generate and record. The capacity slot is freed and the quota charge corrected
        to the real usage as soon as the answer is generated, while the exchange is being
        written (the expert is free by then); with 0 tokens when generation fails or the
        caller went away."""
        freed = False

        async def free(used: int) -> None:
            nonlocal freed
            if freed:
                return
            freed = True
            with anyio.CancelScope(shield=True):
                await self._capacity.release(routed.slot)
                await self._settle(grant, used)

        try:
            return await self._complete(routed, free)
        finally:
            await free(0)  # nothing to do when generation got that far

    async def stream(
        self, routed: Routed, grant: Grant | None = None
    ) -> AsyncIterator[StreamOpened | TextDelta | StreamFinished]:
        """:meth:`_stream`, then the slot release and the quota correction (0 tokens when
        it did not finish), also when the consumer closes the stream early."""
        used = 0
        try:
            async for event in self._stream(routed):
                if isinstance(event, StreamFinished):
                    used = event.usage.total_tokens
                yield event
        finally:
            with anyio.CancelScope(shield=True):
                await self._capacity.release(routed.slot)
                await self._settle(grant, used)

    async def abandon(self, routed: Routed, grant: Grant | None = None) -> None:
        """Give back what :meth:`admit` took for a request whose generation never started
        (a stream whose body was never sent): the capacity slot, and the quota charge."""
        with anyio.CancelScope(shield=True):
            await self._capacity.release(routed.slot)
            await self._settle(grant, 0)

    async def _complete(self, routed: Routed, free: Callable[[int], Coroutine[Any, Any, None]]) -> ChatResult:
        chat, decision = routed.input, routed.decision
        started = time.perf_counter()
        try:
            retrieval = await self.retrieve(routed)
            answer = await self._generate(routed, retrieval)
        except Exception as exc:
            await self._record_failure(routed, exc, started, stream=False)
            raise
        except anyio.get_cancelled_exc_class():
            # The client went away before the answer (backend/chat/api.py cancels on
            # disconnect): one event for the request, not a 200.
            with anyio.CancelScope(shield=True):
                await self._record_failure(routed, None, started, stream=False)
            raise
        retrieval = retrieval.keep(answer.passages)  # what its prompt held is what it cites
        generate_ms = (time.perf_counter() - started) * 1000
        # Slot and quota go back (two Redis calls) while the exchange is written.
        freeing = asyncio.create_task(free(answer.completion.usage.total_tokens))
        try:
            # Shielded: an answer that was generated is recorded, even if its client
            # left meanwhile (it was complete; the event says what it was).
            with anyio.CancelScope(shield=True):
                conversation_id = await self._record(
                    routed,
                    answer.expert,
                    answer.completion.text,
                    answer.completion.usage,
                    answer.fallbacks,
                    generate_ms=generate_ms,
                    upstream_model=answer.completion.model,
                    finish_reason=answer.completion.finish_reason,
                    stream=False,
                    retrieval=retrieval,
                )
        except Exception as exc:  # the database refused the write: nothing of it was kept
            await self._record_failure(routed, exc, started, stream=False, expert=answer.expert)
            raise
        finally:
            await freeing
        return ChatResult(chat.request_id, decision, answer, conversation_id, retrieval)

    @stage("generate", describe_answer)
    async def _generate(self, routed: Routed, retrieval: Retrieval) -> ExpertAnswer:
        """ExpertService.answer as the generate stage (``routed`` names the request for tracing)."""
        return await self._ask(self._experts.answer, routed, retrieval)

    def _ask(self, call: Callable[..., T], routed: Routed, retrieval: Retrieval) -> T:
        """``call`` (ExpertService.answer or .stream) with what ``routed`` asks of its expert:
        the conversation, the retrieved passages, its limits and its capacity replica."""
        chat, decision = routed.input, routed.decision
        return call(
            decision.expert,
            chat.messages,
            [p.as_passage() for p in retrieval.passages],
            allow_fallback=decision.reason != "requested",  # a named expert is never replaced
            max_tokens=chat.max_tokens,
            temperature=chat.temperature,
            replica=routed.slot.replica if routed.slot else None,
            deadline=chat.deadline,
        )

    async def _stream(
        self, routed: Routed
    ) -> AsyncIterator[StreamOpened | TextDelta | StreamFinished]:
        """Yield StreamOpened, TextDelta..., StreamFinished. LLM errors propagate."""
        chat, decision = routed.input, routed.decision
        parts: list[str] = []
        expert = decision.expert
        fallbacks: tuple[FallbackStep, ...] = ()
        done: StreamDone | None = None
        retrieval = await self.retrieve(routed)
        started = time.perf_counter()
        try:
            async for event in traced_stream(
                "generate", chat.request_id, self._ask(self._experts.stream, routed, retrieval), describe_stream_event
            ):
                if isinstance(event, StreamStart):
                    expert, fallbacks = event.expert, event.fallbacks
                    retrieval = retrieval.keep(event.passages)
                    yield StreamOpened(expert, fallbacks, retrieval)
                elif isinstance(event, TextDelta):
                    parts.append(event.text)
                    yield event
                else:
                    done = event
        except Exception as exc:
            await self._record_failure(
                routed, exc, started, stream=True, expert=expert, fallbacks=fallbacks,
                partial="".join(parts),
            )  # fmt: skip
            raise
        except (GeneratorExit, anyio.get_cancelled_exc_class()):
            # The client went away mid-answer: still one event for the request.
            with anyio.CancelScope(shield=True):
                await self._record_failure(
                    routed, None, started, stream=True, expert=expert, fallbacks=fallbacks,
                    partial="".join(parts),
                )  # fmt: skip
            raise
        assert done is not None, "ExpertService.stream always ends with StreamDone"
        try:
            conversation_id = await self._record(
                routed,
                expert,
                "".join(parts),
                done.usage,
                fallbacks,
                generate_ms=(time.perf_counter() - started) * 1000,
                upstream_model=done.model,
                finish_reason=done.finish_reason,
                stream=True,
                retrieval=retrieval,
            )
        except Exception as exc:  # the database refused the write: nothing of it was kept
            await self._record_failure(
                routed, exc, started, stream=True, expert=expert, fallbacks=fallbacks, partial="".join(parts)
            )
            raise
        yield StreamFinished(done.finish_reason, done.usage, done.model, conversation_id, retrieval)

    @stage("record", describe_conversation)
    async def _record(
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
    ) -> str:
        """Store the exchange and its audit event in one transaction (both or neither)."""
        chat, decision = routed.input, routed.decision
        route = {
            "expert": expert,
            "routed_to": decision.expert,
            "reason": str(decision.reason),
            "confidence": decision.confidence,
            "probabilities": dict(decision.probabilities),
            "top_k": list(decision.top_k),
            "router_version": decision.router_version,
            "ood_score": decision.ood_score,
            "detail": decision.detail,
            "route_ms": round(routed.route_ms, 3),
            "fallbacks": [{"expert": f.expert, "error": f.error} for f in fallbacks],
            # What the caller was shown (only chunks it may see) and what was searched.
            "citations": [
                {"number": p.number, "title": p.title, "source": p.source,
                 "snippet": p.snippet, "score": p.score, "location": p.location}
                for p in retrieval.passages
            ],
            "retrieval": retrieval.record(),
        }  # fmt: skip
        exchange = Exchange(
            request_id=chat.request_id,
            user_text=chat.last_user_text,
            answer_text=text,
            expert=expert,
            route=route,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )

        async def write(session: AsyncSession, rows: Rows) -> tuple[str, ChatTrace]:
            conversation_id = await ConversationService(session).record(
                chat.principal, chat.conversation_id, exchange, rows
            )
            trace = self._trace(
                routed,
                expert,
                generate_ms,
                stream=stream,
                usage=usage,
                fallbacks=fallbacks,
                answer=text,
                upstream_model=upstream_model,
                finish_reason=finish_reason,
                conversation_id=conversation_id,
                retrieval=retrieval.record(),
            )
            # One outbox row, no lock: the event commits with the exchange and the chainer
            # gives it its place in the chain (docs/governance.md).
            await self._audit.append_later(session, chat_entry(trace, self._audit.redact_free_text), rows)
            return conversation_id, trace

        # Committed with the writes of concurrent requests, their INSERTs merged
        # (backend/db/group_commit.py).
        conversation_id, trace = await self._writes.run(write)
        if self._metrics is not None:
            self._metrics.observe_chat(trace)
        return conversation_id

    # -- audit -------------------------------------------------------------------
    def _trace(
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
    ) -> ChatTrace:
        chat = routed.input
        slot = routed.slot
        endpoint = self._experts.endpoint(expert, slot.replica if slot and slot.expert == expert else None)
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
        )

    async def _record_failure(
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
        trace = self._trace(
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
            await self._audit.record(self._db, chat_entry(trace, self._audit.redact_free_text))
        except Exception:
            log.exception("could not audit failed request %s", routed.input.request_id)
            return
        if exc is not None:
            mark_recorded(exc)
