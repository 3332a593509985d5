"""The one LLM adapter: every expert call, local or remote, goes through litellm here.

Every option travels with the call; the one process-wide change is made at warm-up:
the models of self-hosted endpoints that litellm has no entry for are added to its
model map at zero price (see :meth:`LiteLLMClient.warm`). litellm is imported when the
client is built (not at module import), after pinning the cost map to the copy bundled
in the package so that import never reaches the network.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import AsyncIterator, Sequence
from types import ModuleType
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from experts.errors import AnswerIncomplete, ContextTooLong, LLMRejected, LLMTimeout, LLMUnavailable
from experts.registry import GenerationParams
from experts.types import (
    ChatMessage,
    Completion,
    Endpoint,
    StreamDone,
    StreamEvent,
    TextDelta,
    Usage,
)

# A model name that exists nowhere: warm() must not resolve to a real endpoint.
_WARM_MODEL = "hosted_vllm/expertgate-warm-up"
# litellm's model-map entry for a self-hosted chat model: no price per token.
_SELF_HOSTED = {
    "mode": "chat",
    "input_cost_per_token": 0.0,
    "output_cost_per_token": 0.0,
    "cache_creation_input_token_cost": 0.0,
    "cache_read_input_token_cost": 0.0,
}


def _load_litellm() -> ModuleType:
    # litellm fetches a model cost map from GitHub at import unless told not to.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = importlib.import_module("litellm")
    # On every failed call litellm prints a "Give Feedback / Get Help" banner to stdout,
    # which says nothing about the failure; experts/service.py logs the error itself.
    settings: Any = litellm  # a module attribute that its stubs do not declare
    settings.suppress_debug_info = True
    return litellm


class LiteLLMClient:
    """Calls chat models through litellm and maps its errors onto :mod:`experts.errors`."""

    def __init__(self) -> None:
        self._litellm = _load_litellm()
        exc = self._litellm.exceptions
        # Order matters: litellm's Timeout and ContextWindowExceededError subclass others.
        self._timeout_types: tuple[type[BaseException], ...] = (exc.Timeout,)
        self._context_types: tuple[type[BaseException], ...] = (exc.ContextWindowExceededError,)
        self._rejected_types: tuple[type[BaseException], ...] = (
            exc.BadRequestError,
            exc.AuthenticationError,
            exc.PermissionDeniedError,
            exc.NotFoundError,
            exc.UnprocessableEntityError,
        )

    async def warm(self, endpoints: Sequence[Endpoint] = ()) -> None:
        """Prepare litellm for the first request, contacting no endpoint.

        Loads what litellm loads lazily on its first call: the proxy's pydantic types,
        imported by every completion, and the tokenizer handed to providers (~0.26 s on
        this machine, ~0.01 s left for the first real call: ``bench/load/first_call.py``).
        The completion is litellm's own ``mock_response``; the token count is local.

        Then describes ``endpoints``' models: litellm prices every response, and for a
        model its map does not hold (a vLLM or llama.cpp deployment's own name) it
        searches the whole map for a near match on every call (~0.3 CPU-ms here,
        ``bench/load/llm_call.py``). A model served from its own ``api_base`` that litellm
        does not know is added to the map at zero price, which is what a self-hosted
        model costs per token. Models litellm knows (a hosted API's) are left alone.
        """
        messages = [{"role": "user", "content": "warm-up"}]
        await self._litellm.acompletion(model=_WARM_MODEL, messages=messages, mock_response="ok")
        self._litellm.token_counter(model=_WARM_MODEL, messages=messages)
        unpriced = self._unpriced(endpoints)
        if unpriced:
            self._litellm.register_model({m: {**_SELF_HOSTED, "litellm_provider": m.split("/")[0]} for m in unpriced})

    def _unpriced(self, endpoints: Sequence[Endpoint]) -> list[str]:
        unpriced = []
        for model in sorted({e.model for e in endpoints if e.api_base is not None}):
            try:
                self._litellm.get_model_info(model=model)
            except Exception:  # litellm raises its own "not mapped" type, or a plain one
                unpriced.append(model)
        return unpriced

    def _kwargs(
        self, endpoint: Endpoint, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": endpoint.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "api_base": endpoint.api_base,
            "api_key": endpoint.api_key,
            "timeout": _timeout(endpoint),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "num_retries": 0,  # retries are the caller's policy, not litellm's
            "drop_params": True,
        }
        if endpoint.api_base is not None:  # self-hosted (vLLM, llama.cpp): not a hosted API
            headers = _trace_headers()
            if headers:
                kwargs["extra_headers"] = headers
        return kwargs

    def _map_error(self, expert: str, exc: Exception) -> Exception:
        detail = f"{type(exc).__name__}: {str(exc)[:300]}"
        if isinstance(exc, self._timeout_types):
            return LLMTimeout(expert, detail)
        if isinstance(exc, self._context_types) or (
            isinstance(exc, self._rejected_types) and _CONTEXT_WORDS.search(str(exc))
        ):  # litellm does not recognise every server's wording (llama.cpp's, for one)
            said = str(exc).rsplit(" - ", 1)[-1][:300]
            return ContextTooLong(expert, f"the request is longer than the model's window; the endpoint said: {said}")
        if isinstance(exc, self._rejected_types):
            return LLMRejected(expert, detail)
        return LLMUnavailable(expert, detail)

    async def complete(
        self,
        expert: str,
        endpoint: Endpoint,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
    ) -> Completion:
        """One non-streamed completion (joined from a stream when the endpoint asks for
        one: ``Endpoint.stream_upstream``). Raises LLMTimeout, LLMUnavailable,
        LLMRejected, and AnswerIncomplete for a joined stream cut short."""
        if endpoint.stream_upstream:
            return await self._joined(expert, endpoint, messages, params)
        try:
            resp = await self._litellm.acompletion(**self._kwargs(endpoint, messages, params))
        except Exception as exc:  # litellm raises many types; all are mapped, none swallowed
            raise self._map_error(expert, exc) from exc
        choice = resp.choices[0]
        usage = getattr(resp, "usage", None)
        return Completion(
            text=choice.message.content or "",
            model=str(resp.model or endpoint.model),
            usage=_usage(usage),
            finish_reason=str(choice.finish_reason or "stop"),
        )

    async def _joined(
        self, expert: str, endpoint: Endpoint, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Completion:
        """:meth:`stream`'s answer as one Completion. Cancelling the caller closes the
        stream, which is what tells the server to stop."""
        parts: list[str] = []
        async for event in self.stream(expert, endpoint, messages, params):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                return Completion("".join(parts), event.model, event.usage, event.finish_reason)
        raise AnswerIncomplete(expert, "the stream ended without its last event")  # stream() always ends with one

    async def stream(
        self,
        expert: str,
        endpoint: Endpoint,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
    ) -> AsyncIterator[StreamEvent]:
        """Yield TextDelta events, then exactly one StreamDone.

        Errors before or during the stream raise the mapped :mod:`experts.errors` type. A
        stream that ends without the model's finish reason was cut by the server (or the
        connection) mid-answer: AnswerIncomplete, not a finished answer.
        """
        kwargs = self._kwargs(endpoint, messages, params)
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
        finish: str | None = None
        usage = Usage()
        model = endpoint.model
        try:
            response = await self._litellm.acompletion(**kwargs)
            async for chunk in response:
                if getattr(chunk, "model", None):
                    model = str(chunk.model)
                chunk_usage = getattr(chunk, "usage", None)
                if chunk_usage is not None and getattr(chunk_usage, "total_tokens", None):
                    usage = _usage(chunk_usage)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                text = getattr(choice.delta, "content", None)
                if text:
                    yield TextDelta(text)
                if choice.finish_reason:
                    finish = str(choice.finish_reason)
        except Exception as exc:
            raise self._map_error(expert, exc) from exc
        if finish is None or not _server_finished(response):
            raise AnswerIncomplete(expert, "the stream ended before the model finished its answer")
        yield StreamDone(finish_reason=finish, usage=usage, model=model)


_TRACE_CONTEXT = TraceContextTextMapPropagator()
# How OpenAI, vLLM and llama.cpp word a prompt longer than the model's window.
_CONTEXT_WORDS = re.compile(r"context (?:length|window|size)|maximum context|too many tokens", re.IGNORECASE)


def _trace_headers() -> dict[str, str]:
    """``traceparent`` of the current span, for a self-hosted endpoint: a vLLM server with
    tracing on continues the request's trace. Empty when nothing is traced. A caller's
    ``tracestate`` stays here: it is the caller's, not the endpoint's."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _TRACE_CONTEXT.inject(carrier)
    return {"traceparent": carrier["traceparent"]} if "traceparent" in carrier else {}


def _server_finished(response: Any) -> bool:
    """Whether the server sent a finish reason. litellm ends every stream with one and
    invents "stop" when the server sent none (a server that dropped or interrupted the
    answer); its stream wrapper keeps what was really received (litellm 1.106)."""
    if not hasattr(response, "received_finish_reason"):
        return True  # not litellm's wrapper: the chunks' own finish reason was checked
    received = response.received_finish_reason or getattr(response, "intermittent_finish_reason", None)
    return received is not None


def _timeout(endpoint: Endpoint) -> float | httpx.Timeout:
    """litellm's ``timeout``: total (per read when streaming) plus a connect bound."""
    if endpoint.connect_timeout_s is None:
        return endpoint.timeout_s
    connect = min(endpoint.connect_timeout_s, endpoint.timeout_s)
    return httpx.Timeout(endpoint.timeout_s, connect=connect)


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    return Usage(
        prompt_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
    )
