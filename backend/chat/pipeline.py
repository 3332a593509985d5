"""The request pipeline: the one place a chat request becomes an answer.

Stages (each a method with typed input and output; what each decided lands in the
stored route record):

1. authenticate   -> Principal              (done by the API dependency)
2. guard input    -> ChatInput              size limits, control characters
3. route          -> RoutingDecision        gate + policy, with the caller's ACL and load
4. retrieve       -> passages               (none until the knowledge issue lands)
5. generate       -> ExpertAnswer / stream  the expert's LLM, fallback chain to general
6. record         -> conversation id        user + assistant messages, one transaction
7. respond                                  done by the API layer from ChatResult
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import anyio

from backend.chat.conversations import ConversationService, Exchange
from backend.db.session import Database
from backend.errors import BadRequest, PayloadTooLarge
from backend.identity.types import Principal
from backend.load import LoadTracker
from experts.registry import AUTO, ExpertRegistry
from experts.service import ExpertService, StreamStart
from experts.types import ChatMessage, ExpertAnswer, FallbackStep, StreamDone, TextDelta, Usage
from router.service import Router
from router.types import RouteRequest, RoutingDecision

_CONTROL = {i: None for i in range(32) if chr(i) not in "\n\r\t"}
HISTORY_TURNS = 3


@dataclass(frozen=True, slots=True)
class Limits:
    max_input_chars: int
    max_messages: int


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

    @property
    def last_user_text(self) -> str:
        return next(m.content for m in reversed(self.messages) if m.role == "user")


@dataclass(frozen=True, slots=True)
class Routed:
    """Stage 3 output: the input and where it goes."""

    input: ChatInput
    decision: RoutingDecision
    route_ms: float


@dataclass(frozen=True, slots=True)
class ChatResult:
    request_id: str
    decision: RoutingDecision
    answer: ExpertAnswer
    conversation_id: str


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """First event of a streamed answer: who answers (after any fallback)."""

    expert: str
    fallbacks: tuple[FallbackStep, ...]


@dataclass(frozen=True, slots=True)
class StreamFinished:
    """Last event of a streamed answer, after the exchange has been stored."""

    finish_reason: str
    usage: Usage
    model: str
    conversation_id: str


class ChatPipeline:
    def __init__(
        self,
        db: Database,
        router: Router,
        registry: ExpertRegistry,
        experts: ExpertService,
        load: LoadTracker,
        limits: Limits,
    ) -> None:
        self._db = db
        self._router = router
        self._registry = registry
        self._experts = experts
        self._load = load
        self._limits = limits

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
        """Check sizes and clean the text. Raises PayloadTooLarge, BadRequest."""
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
        )

    # -- stage 3 -----------------------------------------------------------------
    async def route(self, chat: ChatInput) -> Routed:
        """Decide the expert. Raises NotFound (conversation, model) and Forbidden."""
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
            in_flight=await self._load.snapshot(),
        )
        started = time.perf_counter()
        # The encoder is CPU-bound: keep it off the event loop.
        decision = await anyio.to_thread.run_sync(self._router.route, request)
        return Routed(chat, decision, (time.perf_counter() - started) * 1000)

    # -- stages 5-6 --------------------------------------------------------------
    async def complete(self, routed: Routed) -> ChatResult:
        chat, decision = routed.input, routed.decision
        async with self._load.hold(decision.expert):
            answer = await self._experts.answer(
                decision.expert,
                chat.messages,
                allow_fallback=decision.reason != "requested",
                max_tokens=chat.max_tokens,
                temperature=chat.temperature,
            )
        conversation_id = await self._record(
            routed, answer.expert, answer.completion.text, answer.completion.usage, answer.fallbacks
        )
        return ChatResult(chat.request_id, decision, answer, conversation_id)

    async def stream(
        self, routed: Routed
    ) -> AsyncIterator[StreamOpened | TextDelta | StreamFinished]:
        """Yield StreamOpened, TextDelta..., StreamFinished. LLM errors propagate."""
        chat, decision = routed.input, routed.decision
        parts: list[str] = []
        expert = decision.expert
        fallbacks: tuple[FallbackStep, ...] = ()
        done: StreamDone | None = None
        async with self._load.hold(decision.expert):
            async for event in self._experts.stream(
                decision.expert,
                chat.messages,
                allow_fallback=decision.reason != "requested",
                max_tokens=chat.max_tokens,
                temperature=chat.temperature,
            ):
                if isinstance(event, StreamStart):
                    expert, fallbacks = event.expert, event.fallbacks
                    yield StreamOpened(expert, fallbacks)
                elif isinstance(event, TextDelta):
                    parts.append(event.text)
                    yield event
                else:
                    done = event
        assert done is not None, "ExpertService.stream always ends with StreamDone"
        conversation_id = await self._record(routed, expert, "".join(parts), done.usage, fallbacks)
        yield StreamFinished(done.finish_reason, done.usage, done.model, conversation_id)

    async def _record(
        self,
        routed: Routed,
        expert: str,
        text: str,
        usage: Usage,
        fallbacks: tuple[FallbackStep, ...],
    ) -> str:
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
        }
        async with self._db.transaction() as session:
            return await ConversationService(session).record(
                chat.principal,
                chat.conversation_id,
                Exchange(
                    request_id=chat.request_id,
                    user_text=chat.last_user_text,
                    answer_text=text,
                    expert=expert,
                    route=route,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                ),
            )
