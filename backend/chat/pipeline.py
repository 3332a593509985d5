"""The request pipeline: the one place a chat request becomes an answer.

Every channel (the /v1 API, the web UI through it, the Slack bot) makes one call:

    result = await pipeline.answer(question)          # ChatResult
    stream = await pipeline.open_stream(question)     # AnswerStream of events
    routed = await pipeline.route_only(question)      # /v1/route: stages 2-3 only

Errors that end a request before anything is generated (bad input, not found, quota,
capacity, a prompt the expert refuses) are raised by the call itself, so a channel can answer them as such; once a
stream is open, failures arrive as its last event's exception.

Stages (each a method with typed input and output, the values in backend/chat/types.py;
what each decided lands in the stored route record):

1. authenticate   -> Principal              (done by the channel)
2. guard input    -> ChatInput              size limits, control characters
3. route          -> Routed                 PII scan, gate + policy, with the caller's ACL
3b/c. admit       -> Admission              quotas (429 / degrade), then a capacity slot
                                            on the expert or its overflow target (503);
                                            given back on every way out (admission.py)
4. retrieve       -> Retrieval              the decided expert's index (+ close top-k
                                            experts' indexes: knowledge/targets.py)
5. generate       -> ExpertAnswer / stream  the expert's LLM, fallback chain to general;
                                            quote-first experts open with the passage
                                            sentences that answer it (quoting.py)
6. guard output   -> grounding record       the answer checked against its passages
                                            (backend/grounding/), the expert's policy
                                            applied: flag | quote | refuse; then its
                                            review policy (backend/review): a held
                                            answer is replaced by a placeholder (a held
                                            stream's text is kept back, never sent)
7. record         -> conversation id        user + assistant messages and the audit
                                            event, one transaction (recorder.py)
8. respond                                  done by the channel from ChatResult / events
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial
from typing import TypeVar

import anyio

from backend.cache.service import ResponseCache
from backend.cache.types import CacheLookup
from backend.capacity.service import CapacityService
from backend.chat.admission import Admission
from backend.chat.caching import ChatCache
from backend.chat.exchanges import ConversationService
from backend.chat.quoting import CORRECTION, best_quotes, quoted_answer, refusal, with_draft
from backend.chat.recorder import ChatRecorder
from backend.chat.stream import AnswerStream
from backend.chat.types import (
    ChatInput,
    ChatResult,
    GroundingCheck,
    Limits,
    Question,
    Routed,
    StreamEvent,
    StreamFinished,
    StreamOpened,
)
from backend.db.session import Database
from backend.errors import BadRequest, PayloadTooLarge
from backend.gate.batcher import RouteBatcher
from backend.guard.output import OutputPolicy, StreamScrubber, scrub
from backend.guard.policy import PiiGuard
from backend.guard.safety import InputSafety
from backend.knowledge.service import KnowledgeService, QueryVector
from backend.knowledge.targets import weighted_targets
from backend.knowledge.types import NO_RETRIEVAL, Retrieval
from backend.observability.tracing import (
    describe_answer,
    describe_retrieval,
    describe_routed,
    describe_stream_event,
    stage,
    traced_stream,
)
from backend.quota.service import QuotaService, estimate_tokens
from backend.review.policy import ReviewPlan, ReviewPolicy
from backend.review.types import HeldReview
from experts.registry import AUTO, GENERALIST, ExpertRegistry
from experts.resilience import EXTRACTIVE_FINISH
from experts.service import ExpertService, StreamStart
from experts.types import ChatMessage, ExpertAnswer, FallbackStep, StreamDone, TextDelta
from router.safety.content import pasted
from router.types import Reason, RouteRequest

log = logging.getLogger(__name__)
T = TypeVar("T")
_CONTROL = {i: None for i in range(32) if chr(i) not in "\n\r\t"}
HISTORY_TURNS = 3

# Of a request's deadline, what is kept to audit a refusal and send it: the experts get
# the rest (bench/hardening.py hang: p99 5.55 s at a 5 s deadline without this margin).
REPLY_MARGIN_S = 0.3
# Above this many characters the PII scan runs in a worker thread, not on the event loop.
SCAN_INLINE_CHARS = 2_000


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
        recorder: ChatRecorder,
        pii: PiiGuard,
        knowledge: KnowledgeService | None = None,
        passages: int = 4,
        quota: QuotaService | None = None,
        grounding: GroundingCheck | None = None,
        review: ReviewPolicy | None = None,
        cache: ResponseCache | None = None,
        safety: InputSafety | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._experts = experts
        self._capacity = capacity
        self._limits = limits
        self._batcher = batcher
        self._recorder = recorder
        self._pii = pii
        self._knowledge = knowledge
        self._passages = passages
        self._quota = quota
        self._grounding = grounding
        # The experts' review settings; a pure value, so built here when not given.
        self._review = review or ReviewPolicy(registry)
        self._cache = ChatCache(cache, recorder)  # backend/cache: lookup, replay, keep
        self._safety = safety

    @property
    def recorder(self) -> ChatRecorder:
        return self._recorder

    def close(self) -> None:
        """Stop the routing's own thread (the runtime's close calls this)."""
        self._batcher.close()

    # -- the calls ---------------------------------------------------------------
    async def answer(self, question: Question) -> ChatResult:
        """Stages 2-6 for one non-streamed answer. Raises the AppError (or core error)
        that ended it; a request cancelled while generating (its client left) is
        audited as aborted."""
        routed = await self.route(self.guard(question))
        routed, admission = await self.admit(routed)
        async with admission:
            lookup = await self._cache.lookup(routed, question.cache)
            if lookup is not None and lookup.hit is not None:
                return await self._cache.replay(routed, admission, lookup)
            return await self._complete(routed, admission, lookup)

    async def open_stream(self, question: Question) -> AnswerStream:
        """Stages 2-3c now, and the expert's check of the prompt (a message longer than
        its model holds, PII its policy blocks): their errors are raised here, before
        anything is sent. Then a stream of stages 4-6."""
        routed = await self.route(self.guard(question))
        routed, admission = await self.admit(routed)
        try:
            lookup = await self._cache.lookup(routed, question.cache)
        except BaseException:  # cancelled: nothing will be sent
            await admission.release()
            raise
        if lookup is not None and lookup.hit is not None:
            return AnswerStream(routed, admission, self._cache.replay_stream(routed, admission, lookup))
        await self._check_prompt(routed, admission)
        return AnswerStream(routed, admission, self._stream(routed, lookup))

    async def _check_prompt(self, routed: Routed, admission: Admission) -> None:
        """Refuse, before a stream opens, a prompt the expert would refuse before its
        first token (ContextTooLong, OutboundBlocked: 400, as when not streamed), audited
        and with the admission given back. A long conversation is checked in a worker
        thread: the PII policy's scan grows with the text."""
        chat = routed.input
        started = time.perf_counter()
        check = partial(self._experts.check_prompt, routed.decision.expert, chat.messages, max_tokens=chat.max_tokens)
        try:
            if sum(len(m.content) for m in chat.messages) <= SCAN_INLINE_CHARS:
                check()
            else:
                await anyio.to_thread.run_sync(check)
        except Exception as exc:
            await admission.release()  # nothing will be generated
            await self._recorder.failure(routed, exc, started, stream=True)
            raise
        except BaseException:  # cancelled: nothing will be sent
            with anyio.CancelScope(shield=True):
                await admission.release()
            raise

    async def route_only(self, question: Question) -> Routed:
        """Stages 2-3 and an audit event: where the question would go (/v1/route)."""
        routed = await self.route(self.guard(question))
        await self._recorder.route(routed)
        return routed

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
                f"the messages hold {total} characters; the limit is {self._limits.max_input_chars}",
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
        routed = Routed(chat, encoded.decision, (time.perf_counter() - started) * 1000, query=query)
        if self._safety is not None:
            routed = await self._check_safety(routed, history)
        return routed

    async def _check_safety(self, routed: Routed, history: tuple[str, ...]) -> Routed:
        """Stage 3a: score the request (backend/guard/safety.py) and apply the strictest
        ``safety`` policy of the experts it reaches. Raises UnsafeRequest (audited) for
        ``refuse``; ``general`` sends it to the generalist, without the expert's documents.
        The base encoder's vector made here (or reused) is the one retrieval uses."""
        assert self._safety is not None
        chat, decision = routed.input, routed.decision
        text = chat.last_user_text
        query = routed.query
        vector = query.vector if query is not None and query.model == self._safety.encoder_name else None
        if self._safety.needs_thread(text, history, vector is not None):
            assessed = await anyio.to_thread.run_sync(self._safety.assess_all, text, history, vector)
        else:
            assessed = self._safety.assess(text, history, vector)
            # (a request with history always takes the thread above, so history is () here)
            if self._safety.wants_second_reading(assessed):  # one more transformer pass: off the loop
                assessed = await anyio.to_thread.run_sync(self._safety.read_again, assessed, text, history)
        groups = chat.principal.groups
        reached = [e for e in decision.top_k if e in self._registry and self._registry.get(e).allows(groups)]
        verdict = self._safety.decide(assessed, [decision.expert, *reached])
        routed = replace(routed, safety=verdict, query=QueryVector(assessed.model, assessed.vector))
        if verdict.action == "general" and decision.expert != GENERALIST:
            routed = replace(routed, decision=replace(decision, expert=GENERALIST, reason=Reason.SAFETY))
        elif verdict.action == "refuse":
            refusal = verdict.refusal()
            await self._recorder.failure(routed, refusal, chat.started, stream=False)
            raise refusal
        return routed

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
                await self._recorder.failure(routed, exc, started, stream=False)
                raise
            if grant.degraded and routed.decision.expert != GENERALIST:
                routed = replace(routed, decision=replace(routed.decision, expert=GENERALIST, reason=Reason.DEGRADED))
        try:
            decision, slot = await self._capacity.admit(routed.decision, routed.request_id)
        except Exception as exc:
            await Admission(self._capacity, self._quota, None, grant).release()  # nothing will be generated
            await self._recorder.failure(routed, exc, started, stream=False)
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
    async def _complete(self, routed: Routed, admission: Admission, lookup: CacheLookup | None = None) -> ChatResult:
        """Retrieve, generate and record. The admission is given back (the quota charge
        corrected to the real usage) as soon as the answer is generated, while the
        exchange is being written: the expert is free by then."""
        started = time.perf_counter()
        try:
            retrieval = await self.retrieve(routed)
            answer = await self._generate(routed, retrieval)
        except Exception as exc:
            await self._recorder.failure(routed, exc, started, stream=False)
            raise
        except anyio.get_cancelled_exc_class():
            # The client went away before the answer (backend/api/chat.py cancels on
            # disconnect): one event for the request, not a 200.
            with anyio.CancelScope(shield=True):
                await self._recorder.failure(routed, None, started, stream=False)
            raise
        retrieval = retrieval.keep(answer.passages)  # what its prompt held is what it cites
        generate_ms = (time.perf_counter() - started) * 1000
        # Slot and quota go back (two Redis calls) while the exchange is written.
        freeing = asyncio.create_task(admission.release(answer.completion.usage.total_tokens))
        try:
            # Shielded: an answer that was generated is checked and recorded, even if its
            # client left meanwhile (it was complete; the event says what it was).
            with anyio.CancelScope(shield=True):
                text = answer.completion.text
                if answer.completion.finish_reason != EXTRACTIVE_FINISH:
                    text = self._quote_first(routed, answer.expert, retrieval, text)
                # No secret and none of the expert's instructions leave (guard/output.py).
                text, removed = scrub(text, *self._output_rules(answer.expert))
                text, grounding = await self._ground(routed, answer.expert, retrieval, text)
                held = self._held(self._review.plan(answer.expert), text, grounding)
                shown = text if held is None else held.shown
                answer = replace(answer, completion=replace(answer.completion, text=shown))
                conversation_id = await self._recorder.exchange(
                    routed,
                    answer.expert,
                    shown,
                    answer.completion.usage,
                    answer.fallbacks,
                    generate_ms=generate_ms,
                    upstream_model=answer.completion.model,
                    finish_reason=answer.completion.finish_reason,
                    stream=False,
                    retrieval=retrieval,
                    grounding=grounding,
                    review=held,
                    output=removed.record(),
                    cache=None if lookup is None else lookup.record(),
                )
        except Exception as exc:  # the database refused the write: nothing of it was kept
            await self._recorder.failure(routed, exc, started, stream=False, expert=answer.expert)
            raise
        finally:
            await freeing
        completion = answer.completion
        await self._cache.keep(
            routed, lookup, expert=answer.expert, text=shown, usage=completion.usage, upstream_model=completion.model,
            finish_reason=completion.finish_reason, fallbacks=answer.fallbacks, retrieval=retrieval,
            grounding=grounding, review=held, output=removed.record(),
        )  # fmt: skip
        # A placeholder carries no marks of the draft.
        shown_grounding = grounding if held is None else held.shown_grounding
        cache = None if lookup is None else lookup.record()
        return ChatResult(routed, answer, conversation_id, retrieval, admission.headers, shown_grounding, held, cache)

    def _output_rules(self, expert: str) -> tuple[str, OutputPolicy]:
        """What an answer of ``expert`` may not carry out: its system prompt, and secrets
        and personal data by its ``safety`` policy (backend/guard/output.py)."""
        spec = self._registry.get(expert)
        return spec.system_prompt, OutputPolicy(spec.safety.answer_secrets, spec.safety.answer_pii)

    @staticmethod
    def _held(plan: ReviewPlan | None, text: str, grounding: dict[str, object] | None) -> HeldReview | None:
        """The review this answer goes to (the expert's ``review`` policy), or None."""
        return None if plan is None else plan.hold(text, grounding)

    # -- stage 6: the answer against its sources ----------------------------------
    def _quote_first(self, routed: Routed, expert: str, retrieval: Retrieval, text: str) -> str:
        """For a quote-first expert: the passage sentences that answer the question, then
        the model's text marked as a draft (quoting.py). Unchanged otherwise, and for a
        question about material the user pasted (an e-mail to summarise): the documents
        are not its subject, and sentences chosen by the words they share with the
        e-mail would only stand before the answer."""
        if not retrieval.passages or not self._registry.get(expert).quotes_first:
            return text
        if pasted(routed.input.last_user_text) is not None:
            return text
        return with_draft(best_quotes(routed.input.last_user_text, retrieval.passages), text)

    async def _ground(
        self, routed: Routed, expert: str, retrieval: Retrieval, text: str, *, streamed: bool = False
    ) -> tuple[str, dict[str, object] | None]:
        """Check ``text`` against the passages it may cite and apply the expert's policy
        (experts.yaml ``grounding``). Returns the text to deliver and the check's record
        (None: nothing to check against, no checker, or the check itself failed, which
        never fails the answer). A ``streamed`` answer was already sent: a replacement is
        appended to it as a correction, and the marks stay on the text that was sent."""
        if self._grounding is None or not retrieval.passages:
            return text, None
        policy = self._registry.get(expert).grounding
        passages = [(p.number, p.text) for p in retrieval.passages]
        # What the user pasted is a source too: a summary of their e-mail is supported by
        # the e-mail, not by the documents retrieval found beside it (number 0: no answer
        # cites it, so only claims without markers are judged against it).
        material = pasted(routed.input.last_user_text)
        if material is not None:
            passages.append((0, material))
        try:
            result = await anyio.to_thread.run_sync(self._grounding.check, text, passages)
            action = "none"
            if result.score is not None and result.score < policy.min_score:
                action = policy.on_fail
                replacement = self._replacement(routed, retrieval, action)
                if replacement is not None:  # quoted from passages: they may hold secrets too
                    replacement, _ = scrub(replacement, *self._output_rules(expert))
                if replacement is not None and streamed:
                    text = f"{text}\n\n---\n{CORRECTION}\n\n{replacement}"
                elif replacement is not None:
                    text = replacement
                    result = await anyio.to_thread.run_sync(self._grounding.check, text, passages)
        except Exception:
            log.exception("grounding check failed for %s; answer delivered unchecked", routed.request_id)
            return text, None
        return text, {**result.record(), "action": action, "pasted": material is not None}

    @staticmethod
    def _replacement(routed: Routed, retrieval: Retrieval, action: str) -> str | None:
        """What replaces an answer that failed its check (None: ``flag`` keeps it)."""
        if action == "quote":
            quotes = best_quotes(routed.input.last_user_text, retrieval.passages)
            return quoted_answer(quotes) if quotes else refusal(retrieval.passages)
        if action == "refuse":
            return refusal(retrieval.passages)
        return None

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

    async def _stream(self, routed: Routed, lookup: CacheLookup | None = None) -> AsyncIterator[StreamEvent]:
        """Yield StreamOpened, TextDelta..., StreamFinished. LLM errors propagate."""
        chat, decision = routed.input, routed.decision
        parts: list[str] = []
        expert = decision.expert
        fallbacks: tuple[FallbackStep, ...] = ()
        done: StreamDone | None = None
        plan: ReviewPlan | None = None
        buffered = False  # the answer may be held: nothing of it is sent before the decision
        scrubber: StreamScrubber | None = None  # what may leave, checked before it is sent
        started = time.perf_counter()
        try:
            retrieval = await self.retrieve(routed)
            async for event in traced_stream(
                "generate", chat.request_id, self._ask(self._experts.stream, routed, retrieval), describe_stream_event
            ):
                if isinstance(event, StreamStart):
                    expert, fallbacks = event.expert, event.fallbacks
                    retrieval = retrieval.keep(event.passages)
                    plan = self._review.plan(expert)  # the answering expert's, after any fallback
                    buffered = plan is not None and plan.buffers
                    yield StreamOpened(expert, fallbacks, retrieval)
                    scrubber = StreamScrubber(*self._output_rules(expert))
                    # quote-first: what the documents say comes before the draft
                    safe = scrubber.feed(self._quote_first(routed, expert, retrieval, ""))
                    if safe:
                        parts.append(safe)
                        if not buffered:
                            yield TextDelta(safe)
                elif isinstance(event, TextDelta):
                    safe = scrubber.feed(event.text) if scrubber is not None else event.text
                    if safe:
                        parts.append(safe)
                        if not buffered:
                            yield TextDelta(safe)
                else:
                    done = event
            tail = scrubber.finish() if scrubber is not None else ""
            if tail:  # the held-back end of the answer, checked whole
                parts.append(tail)
                if not buffered:
                    yield TextDelta(tail)
        except Exception as exc:
            await self._recorder.failure(
                routed, exc, started, stream=True, expert=expert, fallbacks=fallbacks,
                partial="".join(parts),
            )  # fmt: skip
            raise
        except (GeneratorExit, anyio.get_cancelled_exc_class()):
            # The client went away mid-answer: still one event for the request.
            with anyio.CancelScope(shield=True):
                await self._recorder.failure(
                    routed, None, started, stream=True, expert=expert, fallbacks=fallbacks,
                    partial="".join(parts),
                )  # fmt: skip
            raise
        assert done is not None, "ExpertService.stream always ends with StreamDone"
        sent = "".join(parts)
        with anyio.CancelScope(shield=True):
            # A buffered answer was not sent yet: a replacement replaces it, as when not streamed.
            text, grounding = await self._ground(routed, expert, retrieval, sent, streamed=not buffered)
        held = self._held(plan, text, grounding)
        shown = text if held is None else held.shown
        if buffered:  # the placeholder, or the released answer, in one piece
            parts = [shown]
            yield TextDelta(shown)
        elif len(shown) > len(sent):  # a correction or a review notice, after what was sent
            parts.append(shown[len(sent) :])
            yield TextDelta(shown[len(sent) :])
        try:
            conversation_id = await self._recorder.exchange(
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
                grounding=grounding,
                review=held,
                output=scrubber.report.record() if scrubber is not None else None,
                cache=None if lookup is None else lookup.record(),
            )
        except Exception as exc:  # the database refused the write: nothing of it was kept
            await self._recorder.failure(
                routed, exc, started, stream=True, expert=expert, fallbacks=fallbacks, partial="".join(parts)
            )
            raise
        await self._cache.keep(
            routed, lookup, expert=expert, text="".join(parts), usage=done.usage, upstream_model=done.model,
            finish_reason=done.finish_reason, fallbacks=fallbacks, retrieval=retrieval, grounding=grounding,
            review=held, output=scrubber.report.record() if scrubber is not None else None,
        )  # fmt: skip
        shown_grounding = grounding if held is None else held.shown_grounding
        yield StreamFinished(
            done.finish_reason, done.usage, done.model, conversation_id, retrieval, shown_grounding, held,
            None if lookup is None else lookup.record(),
        )  # fmt: skip


__all__ = [
    "AnswerStream",
    "ChatInput",
    "ChatPipeline",
    "ChatResult",
    "Limits",
    "Question",
    "Routed",
    "StreamFinished",
    "StreamOpened",
]
