"""Answering with an expert, walking its fallback chain when its LLM is down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from experts.errors import LLMError, LLMRejected, OutboundBlocked
from experts.prompts import build_messages
from experts.registry import ExpertRegistry, ExpertSpec, GenerationParams
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
    """First event of :meth:`ExpertService.stream`: which expert is answering."""

    __slots__ = ("expert", "fallbacks")

    def __init__(self, expert: str, fallbacks: tuple[FallbackStep, ...]) -> None:
        self.expert = expert
        self.fallbacks = fallbacks


class ExpertService:
    """Generates answers. Holds no per-request state; safe to share across requests."""

    def __init__(
        self,
        registry: ExpertRegistry,
        client: LLMClient,
        endpoints: Mapping[str, Endpoint],
        outbound: OutboundFilter | None = None,
    ) -> None:
        missing = [name for name in registry.names if name not in endpoints]
        if missing:
            raise ValueError(f"no endpoint for experts: {', '.join(missing)}")
        self._registry = registry
        self._client = client
        self._endpoints = dict(endpoints)
        self._outbound: OutboundFilter = outbound or PassThrough()

    def _messages(
        self,
        name: str,
        first: bool,
        conversation: Sequence[ChatMessage],
        passages: Sequence[Passage],
        steps: list[FallbackStep],
    ) -> list[ChatMessage] | None:
        """The prompt for ``name`` after its outbound filter; None when it is skipped.

        A blocked first choice raises OutboundBlocked (the request is refused); a
        blocked fallback is skipped and noted in ``steps``.
        """
        spec = self._registry.get(name)
        try:
            sent, docs = self._outbound.outbound(spec, conversation, passages)
        except OutboundBlocked as exc:
            if first:
                raise
            steps.append(FallbackStep(name, exc.detail))
            return None
        return build_messages(spec, sent, docs)

    def endpoint(self, expert: str) -> Endpoint:
        return self._endpoints[expert]

    def _plan(self, expert: str, allow_fallback: bool) -> list[str]:
        self._registry.get(expert)
        return [expert, *self._registry.fallback_chain(expert)] if allow_fallback else [expert]

    def _params(
        self, expert: str, max_tokens: int | None, temperature: float | None
    ) -> GenerationParams:
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
    ) -> ExpertAnswer:
        """Answer with ``expert``, or with the next expert of its fallback chain.

        Raises the last LLMError when every expert in the plan failed, and LLMRejected
        at once (another expert would reject the same request).
        """
        steps: list[FallbackStep] = []
        last: LLMError | None = None
        for i, name in enumerate(self._plan(expert, allow_fallback)):
            messages = self._messages(name, i == 0, conversation, passages, steps)
            if messages is None:
                continue
            try:
                completion = await self._client.complete(
                    name,
                    self._endpoints[name],
                    messages,
                    self._params(name, max_tokens, temperature),
                )
            except LLMRejected:
                raise
            except LLMError as exc:
                steps.append(FallbackStep(name, exc.detail))
                last = exc
                continue
            return ExpertAnswer(expert=name, completion=completion, fallbacks=tuple(steps))
        assert last is not None
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
    ) -> AsyncIterator[StreamStart | StreamEvent]:
        """Yield one StreamStart, then TextDelta events, then one StreamDone.

        Falls back to the next expert only while nothing has been sent; an error after
        the first delta is raised to the caller, which must end its stream with an error.
        """
        steps: list[FallbackStep] = []
        last: LLMError | None = None
        for i, name in enumerate(self._plan(expert, allow_fallback)):
            messages = self._messages(name, i == 0, conversation, passages, steps)
            if messages is None:
                continue
            events = self._client.stream(
                name, self._endpoints[name], messages, self._params(name, max_tokens, temperature)
            )
            started = False
            try:
                async for event in events:
                    if not started:
                        started = True
                        yield StreamStart(name, tuple(steps))
                    yield event
                    if isinstance(event, StreamDone):
                        return
            except LLMRejected:
                raise
            except LLMError as exc:
                if started:
                    raise
                steps.append(FallbackStep(name, exc.detail))
                last = exc
                continue
            if started:
                return
        assert last is not None
        raise last


__all__ = [
    "ExpertService",
    "LLMClient",
    "OutboundFilter",
    "PassThrough",
    "StreamStart",
    "TextDelta",
]
