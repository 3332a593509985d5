"""The values that cross the chat pipeline: what a channel asks, what each stage
hands the next, and the events of a streamed answer. Frozen; no behaviour."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from backend.guard.policy import NO_PII, PiiReport
from backend.guard.safety import SafetyVerdict
from backend.knowledge.service import QueryVector
from backend.knowledge.types import NO_RETRIEVAL, Retrieval
from backend.principal import Principal
from backend.review.types import HeldReview
from experts.types import ChatMessage, ExpertAnswer, FallbackStep, TextDelta, Usage
from router.types import RoutingDecision


@dataclass(frozen=True, slots=True)
class Limits:
    max_input_chars: int
    max_messages: int
    deadline_s: float | None = None  # one per request, from its guard to its answer


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
    # False: the caller sent ``Cache-Control: no-cache``: the response cache is not read
    # (a fresh answer is generated, and may be kept).
    cache: bool = True


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
    safety: SafetyVerdict | None = None  # the input safety check (backend/guard/safety.py)

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
    grounding: Mapping[str, object] | None = None  # the grounding check's record (stage 7)
    review: HeldReview | None = None  # the answer went to a person (backend/review)
    cache: Mapping[str, object] | None = None  # what the response cache did (CacheLookup.record)

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
    cache: Mapping[str, object] | None = None  # a replayed answer says so from the start


@dataclass(frozen=True, slots=True)
class StreamFinished:
    """Last event of a streamed answer, after the exchange has been stored."""

    finish_reason: str
    usage: Usage
    model: str
    conversation_id: str
    retrieval: Retrieval = NO_RETRIEVAL
    grounding: Mapping[str, object] | None = None
    review: HeldReview | None = None
    cache: Mapping[str, object] | None = None


class GroundingResult(Protocol):
    """What a grounding check returns (backend/grounding/): a score (None: nothing
    checked) and a JSON-able record of it for the response and the audit event."""

    @property
    def score(self) -> float | None: ...

    def record(self) -> dict[str, object]: ...


class GroundingCheck(Protocol):
    """Checks an answer against the passages it may cite: (citation number, text)."""

    def check(self, answer: str, passages: Sequence[tuple[int, str]]) -> GroundingResult: ...


StreamEvent = StreamOpened | TextDelta | StreamFinished
