"""The request pipeline: the one place a chat request becomes an answer.

Every channel (the /v1 API, the web UI through it, the Slack bot) makes one call:

    result = await pipeline.answer(question)          # ChatResult
    stream = await pipeline.open_stream(question)     # AnswerStream of events
    routed = await pipeline.route_only(question)      # /v1/route: stages 2-3 only

Errors that end a request before anything is generated (bad input, not found, quota,
capacity) are raised by the call itself, so a channel can answer them as such; once a
stream is open, failures arrive as its last event's exception.

Stages (each a method with typed input and output; what each decided lands in the
stored route record):

1. authenticate   -> Principal              (done by the channel)
2. guard input    -> ChatInput              size limits, control characters
3. route          -> Routed                 PII scan, gate + policy, with the caller's ACL
3b/c. admit       -> Admission              quotas (429 / degrade), then a capacity slot
                                            on the expert or its overflow target (503);
                                            given back on every way out (admission.py)
4. retrieve       -> Retrieval              the decided expert's index (+ close top-k
                                            experts' indexes: knowledge/targets.py)
5. generate       -> ExpertAnswer / stream  the expert's LLM, fallback chain to general
6. record         -> conversation id        user + assistant messages and the audit
                                            event, one transaction
7. respond                                  done by the channel from ChatResult / events
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.chat import ROUTE_ACTION, ChatTrace, chat_entry, route_record
from backend.audit.types import CLIENT_CLOSED
from backend.audit.writer import AuditTrail, mark_recorded
from backend.capacity.service import CapacityService
from backend.chat.admission import Admission
from backend.chat.conversations import ConversationService, Exchange
from backend.db.group_commit import GroupCommit, Rows
from backend.db.session import Database
from backend.errors import AppError, BadRequest, PayloadTooLarge, to_app_error
from backend.guard.policy import NO_PII, PiiGuard, PiiReport
from backend.identity.types import Principal
from backend.knowledge.service import KnowledgeService, QueryVector
from backend.knowledge.targets import weighted_targets
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
from backend.quota.service import QuotaService, estimate_tokens
from backend.routing.batcher import RouteBatcher
from experts.registry import AUTO, GENERALIST, ExpertRegistry
from experts.service import ExpertService, StreamStart
from experts.types import ChatMessage, ExpertAnswer, FallbackStep, StreamDone, TextDelta, Usage
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
class Question:
    """What a channel asks: who, which model (``auto`` or an expert), the conversation's
    messages as (role, text), and the caller's generation knobs. ``request_id`` names the
    request from the start, in the audit and in errors a channel reports."""

    principal: Principal
    model: str
    messages: Sequence[tuple[str, str]]
    conversation_id: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


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
    """Stage 3 output: the input and where it goes (after admission: where it went, an
    overflow or a degrade included)."""

    input: ChatInput
    decision: RoutingDecision
    route_ms: float
    query: QueryVector | None = None  # the router's vector of the text, reused by retrieval
    replica: int | None = None  # the replica of the expert whose capacity slot it holds

    @property
    def request_id(self) -> str:
        return self.input.request_id


@dataclass(frozen=True, slots=True)
class ChatResult:
    routed: Routed
    answer: ExpertAnswer
    conversation_id: str
    retrieval: Retrieval = NO_RETRIEVAL
    headers: Mapping[str, str] = field(default_factory=dict)  # x-ratelimit-* of the caller

    @property
    def request_id(self) -> str:
        return self.routed.request_id

    @property
    def decision(self) -> RoutingDecision:
        return self.routed.decision


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


class AnswerStream:
    """An open streamed answer: StreamOpened, TextDelta..., StreamFinished (or the
    failure, raised after the text so far). It holds the request's admission and gives
    it back when the stream ends, fails or is closed, and on :meth:`aclose` when it was
    never read (a client that left before the first byte)."""

    def __init__(self, routed: Routed, admission: Admission, events: AsyncIterator[StreamEvent]) -> None:
        self.routed = routed
        self.headers = admission.headers
        self._admission = admission
        self._events = events

    @property
    def request_id(self) -> str:
        return self.routed.request_id

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._run()

    async def _run(self) -> AsyncIterator[StreamEvent]:
        used = 0
        try:
            async for event in self._events:
                if isinstance(event, StreamFinished):
                    used = event.usage.total_tokens
                yield event
        finally:
            await self._admission.release(used)

    async def aclose(self) -> None:
        """End the stream wherever it is; gives the admission back (idempotent)."""
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()
        await self._admission.release()


StreamEvent = StreamOpened | TextDelta | StreamFinished


class ChatPipeline:
    """The stages, and the three calls that run them (module docstring). Every
    collaborator is passed in; the pipeline holds no per-request state."""

    def __init__(
        self,
        db: Database,
        registry: ExpertRegistry,
        experts: ExpertService,
        capacity: CapacityService,
        limits: Limits,
        *,
        batcher: RouteBatcher,
        writes: GroupCommit,
        audit: AuditTrail,
        pii: PiiGuard,
        knowledge: KnowledgeService | None = None,
        passages: int = 4,
        metrics: Metrics | None = None,
        quota: QuotaService | None = None,
    ) -> None:
        self._db = db
        self._writes = writes
        self._batcher = batcher
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

    @property
    def writes(self) -> GroupCommit:
        """Where exchanges are written (shared transactions: backend/db/group_commit.py)."""
        return self._writes

    # -- the calls ---------------------------------------------------------------
    async def answer(self, question: Question) -> ChatResult:
        """Stages 2-6 for one non-streamed answer. Raises the AppError (or core error)
        that ended it; a request cancelled while generating (its client left) is
        audited as aborted."""
        routed = await self.route(self.guard(question))
        routed, admission = await self.admit(routed)
        async with admission:
            return await self._complete(routed, admission)

    async def open_stream(self, question: Question) -> AnswerStream:
        """Stages 2-3c now (their errors are raised here), then a stream of stages 4-6."""
        routed = await self.route(self.guard(question))
        routed, admission = await self.admit(routed)
        return AnswerStream(routed, admission, self._stream(routed))

    async def route_only(self, question: Question) -> Routed:
        """Stages 2-3 and an audit event: where the question would go (/v1/route)."""
        routed = await self.route(self.guard(question))
        await self._record_route(routed)
        return routed

    async def finish_writes(self) -> None:
        """Wait for the exchanges queued for the group commit (at shutdown, before the
        audit chainer's last drain, so that their events are chained too)."""
        await self._writes.aclose()

    # -- stage 2 -----------------------------------------------------------------
    def guard(self, question: Question) -> ChatInput:
        """Check sizes and clean the text. Raises PayloadTooLarge, BadRequest. The PII scan
        (CPU work that grows with the text) is done by :meth:`route`, off the event loop."""
        started = time.perf_counter()
        deadline = None
        if self._limits.deadline_s is not None:  # the experts stop early enough to record and reply in time
            deadline = time.monotonic() + max(0.1, self._limits.deadline_s - REPLY_MARGIN_S)
        messages = question.messages
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
            principal=question.principal,
            model=question.model,
            messages=tuple(cleaned),
            conversation_id=question.conversation_id,
            max_tokens=question.max_tokens,
            temperature=question.temperature,
            request_id=question.request_id,
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

    async def _record_route(self, routed: Routed) -> None:
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

    # -- stages 3b (quotas: backend/quota) and 3c (capacity: backend/capacity) ---
    @stage("admit", describe_routed)
    async def admit(self, routed: Routed) -> tuple[Routed, Admission]:
        """Charge the caller's quotas once (estimated tokens), then hold a capacity slot.

        Raises QuotaExceeded (429), QuotaUnavailable (503), ExpertAtCapacity (503 with
        Retry-After) or CapacityUnavailable (503), each audited, with nothing held. Over
        a ``degrade`` policy the request goes to the generalist with reason
        ``degraded``; a full expert overflows by the router's rule (reason
        ``overflow``). The returned Admission must be released (``async with``).
        """
        grant = None
        started = time.perf_counter()
        if self._quota is not None:
            chat = routed.input
            max_tokens = chat.max_tokens or self._registry.get(routed.decision.expert).params.max_tokens
            try:
                estimate = estimate_tokens(chat.messages, max_tokens)
                grant = await self._quota.admit(chat.principal, chat.request_id, estimate)
            except Exception as exc:
                await self._record_failure(routed, exc, started, stream=False)
                raise
            if grant.degraded and routed.decision.expert != GENERALIST:
                routed = replace(routed, decision=replace(routed.decision, expert=GENERALIST, reason=Reason.DEGRADED))
        try:
            decision, slot = await self._capacity.admit(routed.decision, routed.request_id)
        except Exception as exc:
            await Admission(self._capacity, self._quota, None, grant).release()  # nothing will be generated
            await self._record_failure(routed, exc, started, stream=False)
            raise
        replica = slot.replica if slot is not None and slot.expert == decision.expert else None
        routed = replace(routed, decision=decision, replica=replica)
        return routed, Admission(self._capacity, self._quota, slot, grant)

    # -- stage 4 -----------------------------------------------------------------
    @stage("retrieve", describe_retrieval)
    async def retrieve(self, routed: Routed) -> Retrieval:
        """Passages for the decision (knowledge/targets.py says which indexes and how
        each one's scores count), ACL-filtered by the caller's groups."""
        if self._knowledge is None:
            return NO_RETRIEVAL
        chat = routed.input
        targets = weighted_targets(routed.decision, self._registry, chat.principal.groups)
        if not targets:
            return NO_RETRIEVAL
        return await self._knowledge.retrieve(
            chat.last_user_text, targets, chat.principal.groups, self._passages, vector=routed.query
        )

    # -- stages 5-6 --------------------------------------------------------------
    async def _complete(self, routed: Routed, admission: Admission) -> ChatResult:
        """Retrieve, generate and record. The admission is given back (the quota charge
        corrected to the real usage) as soon as the answer is generated, while the
        exchange is being written: the expert is free by then."""
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
        freeing = asyncio.create_task(admission.release(answer.completion.usage.total_tokens))
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
        return ChatResult(routed, answer, conversation_id, retrieval, admission.headers)

    @stage("generate", describe_answer)
    async def _generate(self, routed: Routed, retrieval: Retrieval) -> ExpertAnswer:
        """ExpertService.answer as the generate stage (``routed`` names the request for tracing)."""
        return await self._ask(self._experts.answer, routed, retrieval)

    def _ask(self, call: Callable[..., T], routed: Routed, retrieval: Retrieval) -> T:
        """``call`` (ExpertService.answer or .stream) with what ``routed`` asks of its expert:
        the conversation, the retrieved passages, its limits, its capacity replica and
        the request's deadline."""
        chat, decision = routed.input, routed.decision
        return call(
            decision.expert,
            chat.messages,
            [p.as_passage() for p in retrieval.passages],
            allow_fallback=decision.reason != "requested",  # a named expert is never replaced
            max_tokens=chat.max_tokens,
            temperature=chat.temperature,
            replica=routed.replica,
            deadline=chat.deadline,
        )

    async def _stream(self, routed: Routed) -> AsyncIterator[StreamEvent]:
        """Yield StreamOpened, TextDelta..., StreamFinished. LLM errors propagate."""
        chat, decision = routed.input, routed.decision
        parts: list[str] = []
        expert = decision.expert
        fallbacks: tuple[FallbackStep, ...] = ()
        done: StreamDone | None = None
        started = time.perf_counter()
        try:
            retrieval = await self.retrieve(routed)
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
            **route_record(decision, expert),
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
