"""Answering with an expert, walking its fallback chain when its LLM is down."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from experts.budget import FittedPrompt, fit_prompt
from experts.errors import (
    AnswerIncomplete,
    CircuitOpen,
    ContextTooLong,
    DeadlineExceeded,
    LLMError,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
    OutboundBlocked,
)
from experts.registry import ExpertRegistry, ExpertSpec, GenerationParams
from experts.resilience import (
    BreakerSnapshot,
    CircuitBreaker,
    RetryPolicy,
    breaker_for,
    extractive_completion,
)
from experts.types import (
    ChatMessage,
    Completion,
    Endpoint,
    ExpertAnswer,
    FallbackStep,
    Passage,
    StreamDone,
    StreamEvent,
    TextDelta,
)

log = logging.getLogger(__name__)


class LLMClient(Protocol):
    async def complete(
        self,
        expert: str,
        endpoint: Endpoint,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
    ) -> Completion: ...

    def stream(
        self,
        expert: str,
        endpoint: Endpoint,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
    ) -> AsyncIterator[StreamEvent]: ...

    async def warm(self, endpoints: Sequence[Endpoint] = ()) -> None:
        """Load now what the first call would otherwise load, and learn what it should
        know of ``endpoints`` (contacts no endpoint)."""
        ...


class OutboundFilter(Protocol):
    """What may leave for one expert's endpoint, applied once per expert tried.

    Returns the conversation and passages to send (e.g. with PII redacted), or raises
    OutboundBlocked. Called per expert so a fallback gets its own policy's treatment.
    """

    def outbound(
        self, spec: ExpertSpec, conversation: Sequence[ChatMessage], passages: Sequence[Passage]
    ) -> tuple[Sequence[ChatMessage], Sequence[Passage]]: ...


class PassThrough:
    """The OutboundFilter that sends everything as is."""

    def outbound(
        self, spec: ExpertSpec, conversation: Sequence[ChatMessage], passages: Sequence[Passage]
    ) -> tuple[Sequence[ChatMessage], Sequence[Passage]]:
        return conversation, passages


class StreamStart:
    """First event of :meth:`ExpertService.stream`: which expert is answering, and how
    many of the passages (the first ``passages``) its prompt holds."""

    __slots__ = ("expert", "fallbacks", "passages")

    def __init__(self, expert: str, fallbacks: tuple[FallbackStep, ...], passages: int | None = None) -> None:
        self.expert = expert
        self.fallbacks = fallbacks
        self.passages = passages


def _within(endpoint: Endpoint, left: float | None) -> Endpoint:
    """``endpoint`` with its call timeout cut to the time left before the deadline."""
    if left is None or left >= endpoint.timeout_s:
        return endpoint
    return replace(endpoint, timeout_s=max(left, 0.001))


class ExpertService:
    """Generates answers. Holds no per-request state, only each expert's circuit breaker;
    safe to share across the requests of one event loop."""

    def __init__(
        self,
        registry: ExpertRegistry,
        client: LLMClient,
        endpoints: Mapping[str, Endpoint],
        outbound: OutboundFilter | None = None,
        *,
        extractive: bool = True,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        replicas: Mapping[str, Sequence[Endpoint]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``extractive``: when every expert of a fallback plan is unavailable and
        passages were retrieved, answer with them quoted (see
        :func:`experts.resilience.extractive_completion`) instead of raising.
        ``replicas``: an expert's replica endpoints (experts.yaml ``replicas`` order);
        a call names the one its capacity slot chose. ``breakers``, ``sleep``, ``rng``
        and ``clock`` (what deadlines are measured on) are seams for tests."""
        missing = [name for name in registry.names if name not in endpoints]
        if missing:
            raise ValueError(f"no endpoint for experts: {', '.join(missing)}")
        self._registry = registry
        self._client = client
        self._endpoints = dict(endpoints)
        self._replicas = {name: tuple(eps) for name, eps in (replicas or {}).items()}
        self._outbound: OutboundFilter = outbound or PassThrough()
        self._extractive = extractive
        given = dict(breakers or {})
        self._breakers = {s.name: given.get(s.name) or breaker_for(s) for s in registry}
        self._retry = {s.name: RetryPolicy.of(s) for s in registry}
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock

    async def warm(self) -> None:
        """Prepare the LLM client before the first request (at server start), with every
        endpoint an expert may call (its own, its replicas)."""
        endpoints = [*self._endpoints.values(), *(e for eps in self._replicas.values() for e in eps)]
        await self._client.warm(endpoints)

    def breakers(self) -> list[BreakerSnapshot]:
        """Every expert's circuit breaker, in registry order."""
        return [b.snapshot() for b in self._breakers.values()]

    def breaker(self, expert: str) -> BreakerSnapshot:
        self._registry.get(expert)
        return self._breakers[expert].snapshot()

    def _admit(self, name: str) -> CircuitBreaker:
        breaker = self._breakers[name]
        if not breaker.acquire():
            wait = breaker.retry_in_s()
            raise CircuitOpen(name, f"circuit open, endpoint not called (next probe in {wait:.1f}s)", wait)
        return breaker

    def _left(self, name: str, deadline: float | None) -> float | None:
        """Seconds before ``deadline`` (None: no deadline). Raises DeadlineExceeded."""
        if deadline is None:
            return None
        left = deadline - self._clock()
        if left <= 0:
            raise DeadlineExceeded(name, "the request's deadline passed before an answer began")
        return left

    async def _backoff(self, name: str, attempt: int, deadline: float | None = None) -> bool:
        """Sleep before retry ``attempt`` (0-based); False when no retry is left, or when
        the retry could not start before the deadline."""
        policy = self._retry[name]
        if attempt >= policy.retries:
            return False
        delay = policy.delay(attempt, self._rng)
        if deadline is not None and self._clock() + delay >= deadline:
            return False
        await self._sleep(delay)
        return True

    async def _complete(
        self,
        name: str,
        endpoint: Endpoint,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        deadline: float | None = None,
    ) -> Completion:
        """One expert's completion behind its breaker, retrying transient errors, each try
        bounded by the time left before ``deadline``. An empty answer is a failure of
        the endpoint (AnswerIncomplete), retried like one."""
        attempt = 0
        while True:
            left = self._left(name, deadline)
            breaker = self._admit(name)
            try:
                call = self._client.complete(name, _within(endpoint, left), messages, params)
                completion = await (call if left is None else asyncio.wait_for(call, left))
                if not completion.text.strip():
                    raise AnswerIncomplete(name, "the model returned an empty answer")
            except TimeoutError:  # wait_for: the deadline, not the endpoint's own timeout
                breaker.release()
                raise DeadlineExceeded(name, "the request's deadline passed while the model answered") from None
            except LLMRejected:
                breaker.success()  # the endpoint answered; the request is what is wrong
                raise
            except LLMError:
                breaker.failure()
                if not await self._backoff(name, attempt, deadline):
                    raise
                attempt += 1
                continue
            except BaseException:
                breaker.release()
                raise
            breaker.success()
            return completion

    async def _stream(
        self,
        name: str,
        endpoint: Endpoint,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        deadline: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """One expert's stream behind its breaker. Retries transient errors only while
        nothing was yielded; enforces the expert's first-token timeout and the request's
        ``deadline`` until the first text. The breaker hears of success when StreamDone
        arrives, before it is handed on.

        Leading whitespace is held back until text follows it, so that an answer with no
        text at all (AnswerIncomplete) is found before anything was yielded and can be
        retried or failed over."""
        first_token_s = self._registry.get(name).first_token_timeout_s
        attempt = 0
        while True:
            left = self._left(name, deadline)
            breaker = self._admit(name)
            events = aiter(self._client.stream(name, endpoint, messages, params))
            started = settled = False
            held = ""
            try:
                event = await self._first_event(name, events, first_token_s, left)
                while True:
                    if isinstance(event, TextDelta) and not started and not event.text.strip():
                        held += event.text  # no text yet: not started
                        event = await self._first_event(name, events, first_token_s, self._left(name, deadline))
                        continue
                    if isinstance(event, StreamDone):
                        if not started:
                            raise AnswerIncomplete(name, "the model returned an empty answer")
                        settled = True
                        breaker.success()
                    elif held:
                        event, held = TextDelta(held + event.text), ""
                    started = True
                    yield event
                    if settled:
                        return
                    event = await anext(events)
            except StopAsyncIteration:
                settled = True
                breaker.failure()
                raise LLMUnavailable(name, "stream ended without a final event") from None
            except LLMRejected:
                settled = True
                breaker.success()  # the endpoint answered; the request is what is wrong
                raise
            except DeadlineExceeded:
                raise  # not the endpoint's failure: the breaker is released below
            except LLMError:
                settled = True
                breaker.failure()
                if started or not await self._backoff(name, attempt, deadline):
                    raise
                attempt += 1
                continue
            finally:
                if not settled:
                    breaker.release()  # abandoned (cancelled or closed by the consumer)
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def _first_event(
        self, name: str, events: AsyncIterator[StreamEvent], first_token_s: float | None, left: float | None
    ) -> StreamEvent:
        """The next event before the first text: within the expert's first-token timeout
        (LLMTimeout) and the time left before the request's deadline (DeadlineExceeded)."""
        bounds = [b for b in (first_token_s, left) if b is not None]
        if not bounds:
            return await anext(events)
        try:
            return await asyncio.wait_for(anext(events), min(bounds))
        except TimeoutError:
            if left is not None and left <= (first_token_s or left):
                raise DeadlineExceeded(name, "the request's deadline passed before the first token") from None
            raise LLMTimeout(name, f"no first token within {first_token_s}s") from None

    def _prompt(
        self,
        name: str,
        first: bool,
        conversation: Sequence[ChatMessage],
        passages: Sequence[Passage],
        params: GenerationParams,
        steps: list[FallbackStep],
    ) -> FittedPrompt | None:
        """The prompt for ``name`` after its outbound filter, fitted to its context
        window (experts/budget.py); None when it is skipped.

        A first choice that is blocked or cannot fit raises (OutboundBlocked,
        ContextTooLong: the request is refused); such a fallback is skipped and noted in
        ``steps``.
        """
        spec = self._registry.get(name)
        try:
            sent, docs = self._outbound.outbound(spec, conversation, passages)
            return fit_prompt(spec, sent, docs, params.max_tokens)
        except (OutboundBlocked, ContextTooLong) as exc:
            if first:
                raise
            steps.append(FallbackStep(name, exc.detail))
            return None

    def check_prompt(self, expert: str, conversation: Sequence[ChatMessage], *, max_tokens: int | None = None) -> None:
        """Raise now what :meth:`answer` or :meth:`stream` would raise for ``expert``'s
        prompt before calling its model: OutboundBlocked (its PII policy refuses the
        conversation) or ContextTooLong (the last user message does not fit its window).

        Passages do not change the outcome: they are dropped before a prompt is refused.
        A stream calls this before it opens, so that such a refusal is an HTTP error,
        not an event in a response that already said 200.
        """
        params = self._params(expert, max_tokens, None)
        self._prompt(expert, True, conversation, (), params, [])

    def endpoint(self, expert: str, replica: int | None = None) -> Endpoint:
        """Where ``expert`` is called: replica ``replica`` of it, or its one endpoint."""
        if replica is None:
            return self._endpoints[expert]
        return self._replicas[expert][replica]

    def _plan(self, expert: str, allow_fallback: bool) -> list[str]:
        self._registry.get(expert)
        return [expert, *self._registry.fallback_chain(expert)] if allow_fallback else [expert]

    def _params(self, expert: str, max_tokens: int | None, temperature: float | None) -> GenerationParams:
        params = self._registry.get(expert).params
        update: dict[str, float | int] = {}
        if max_tokens is not None:
            update["max_tokens"] = min(max_tokens, params.max_tokens)
        if temperature is not None:
            update["temperature"] = temperature
        return params.model_copy(update=update) if update else params

    async def answer(
        self,
        expert: str,
        conversation: Sequence[ChatMessage],
        passages: Sequence[Passage] = (),
        *,
        allow_fallback: bool = True,
        max_tokens: int | None = None,
        temperature: float | None = None,
        replica: int | None = None,
        deadline: float | None = None,
    ) -> ExpertAnswer:
        """Answer with ``expert``, or with the next expert of its fallback chain.

        Raises the last LLMError when every expert in the plan failed, LLMRejected at
        once (another expert would reject the same request), and DeadlineExceeded when
        ``deadline`` (a ``clock`` time) passes first: every try, back-off and fallback
        fits before it. ``replica``: which of ``expert``'s replicas to call (its
        capacity slot's); fallbacks use their own endpoint.
        """
        steps: list[FallbackStep] = []
        last: LLMError | None = None
        for i, name in enumerate(self._plan(expert, allow_fallback)):
            params = self._params(name, max_tokens, temperature)
            prompt = self._prompt(name, i == 0, conversation, passages, params, steps)
            if prompt is None:
                continue
            try:
                endpoint = self.endpoint(name, replica if i == 0 else None)
                completion = await self._complete(name, endpoint, prompt.messages, params, deadline)
            except LLMRejected:
                raise
            except LLMError as exc:
                _failed(name, exc)
                steps.append(FallbackStep(name, exc.detail))
                last = exc
                if isinstance(exc, DeadlineExceeded):
                    break
                continue
            return ExpertAnswer(name, completion, tuple(steps), prompt.passages)
        assert last is not None  # the first choice raises rather than being skipped
        if self._extractive and allow_fallback and passages:
            log.warning("no model answered for %s: answering with %d quoted passages", expert, len(passages))
            return ExpertAnswer(expert, extractive_completion(passages), tuple(steps))
        raise last

    async def stream(
        self,
        expert: str,
        conversation: Sequence[ChatMessage],
        passages: Sequence[Passage] = (),
        *,
        allow_fallback: bool = True,
        max_tokens: int | None = None,
        temperature: float | None = None,
        replica: int | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[StreamStart | StreamEvent]:
        """Yield one StreamStart, then TextDelta events, then one StreamDone.

        Falls back to the next expert only while nothing has been sent; an error after
        the first delta is raised to the caller, which must end its stream with an error.
        ``deadline`` bounds the time to the first text (tries, back-off, fallbacks);
        once text flows, each read has the endpoint's own timeout.
        """
        steps: list[FallbackStep] = []
        last: LLMError | None = None
        for i, name in enumerate(self._plan(expert, allow_fallback)):
            params = self._params(name, max_tokens, temperature)
            prompt = self._prompt(name, i == 0, conversation, passages, params, steps)
            if prompt is None:
                continue
            endpoint = self.endpoint(name, replica if i == 0 else None)
            events = self._stream(name, endpoint, prompt.messages, params, deadline)
            started = False
            try:
                async for event in events:
                    if not started:
                        started = True
                        yield StreamStart(name, tuple(steps), prompt.passages)
                    yield event  # _stream ends after StreamDone, closing cleanly
            except LLMRejected:
                raise
            except LLMError as exc:
                if started:
                    raise
                _failed(name, exc)
                steps.append(FallbackStep(name, exc.detail))
                last = exc
                if isinstance(exc, DeadlineExceeded):
                    break
                continue
            if started:
                return
        assert last is not None
        if self._extractive and allow_fallback and passages:
            log.warning("no model answered for %s: streaming %d quoted passages", expert, len(passages))
            completion = extractive_completion(passages)
            yield StreamStart(expert, tuple(steps))
            yield TextDelta(completion.text)
            yield StreamDone(completion.finish_reason, completion.usage, completion.model)
            return
        raise last


def _failed(name: str, exc: LLMError) -> None:
    """The server log's line for an expert that did not answer (the request's audit event
    and its ``fallbacks`` say it too): an operator reading the log sees why."""
    log.warning("expert %s did not answer: %s: %s", name, type(exc).__name__, exc.detail)


__all__ = [
    "ExpertService",
    "LLMClient",
    "OutboundFilter",
    "PassThrough",
    "StreamStart",
    "TextDelta",
]
