"""OpenTelemetry traces: one span per HTTP request and per pipeline stage, off by default.

Why here and not inline in the pipeline: the pipeline only carries ``@stage(...)``
decorators and one wrapped call, so tracing never obscures its logic.

- :func:`setup_tracing` installs an SDK tracer provider exporting OTLP/HTTP protobuf
  to ``Settings.otel_endpoint`` (or OTEL_EXPORTER_OTLP_ENDPOINT) with a batching
  span processor. Without an endpoint it installs nothing and every hook below is a
  plain call: one ``is None`` check, no span objects, no context switches.
- :class:`TracingMiddleware` opens the request's root span (``POST /v1/chat/completions``)
  so that the stage spans of one request form one trace; a caller's W3C ``traceparent``
  makes it a child of the caller's span (``Settings.otel_continue_traces``; a caller's
  "not sampled" flag does not switch tracing off). The LLM call sends the trace on to
  self-hosted endpoints (experts/llm.py), so a vLLM server that traces continues it.
- :func:`stage` decorates an async pipeline method: span ``expertgate.<name>`` with
  ``expertgate.request_id`` (the audited id) and what the stage decided.
- :func:`traced_stream` does the same for the streamed generate stage: the span ends
  when the stream does (it is never made current: a generator cannot restore context).

The provider is process-global, as OpenTelemetry's API is: set up once per process by
the app's lifespan, shut down (flushing spans) when it ends.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.knowledge.types import Retrieval
from backend.settings import Settings
from experts.service import StreamStart
from experts.types import ExpertAnswer, StreamDone, Usage
from router.types import RoutingDecision

T = TypeVar("T")
E = TypeVar("E")
Attributes = Mapping[str, str | int | float | bool]

REQUEST_ID = "expertgate.request_id"
_tracer: Tracer | None = None
_TRACE_CONTEXT = TraceContextTextMapPropagator()
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def setup_tracing(settings: Settings, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """Start exporting spans, or do nothing when no endpoint (and no ``exporter``) is given.

    ``exporter`` replaces the OTLP/HTTP one. Returns the provider to shut down at exit.
    """
    if exporter is None:
        if not settings.otel_endpoint:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.otel_endpoint.rstrip("/") + "/v1/traces")
    return use_processor(settings, BatchSpanProcessor(exporter))


def use_processor(settings: Settings, processor: SpanProcessor) -> TracerProvider:
    """Trace through ``processor`` from now on (this process's provider)."""
    global _tracer
    # Every request is traced: a caller's traceparent decides the trace's id, never
    # (by its "sampled" flag) whether expertgate records it.
    sampler = ParentBased(root=ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON)
    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}), sampler=sampler)
    provider.add_span_processor(processor)
    _tracer = provider.get_tracer("expertgate")
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Flush and stop; tracing is off afterwards."""
    global _tracer
    _tracer = None
    if provider is not None:
        provider.shutdown()


def _request_id(value: object) -> str | None:
    """The request id of a ChatInput, or of a Routed (through its ``input``)."""
    for candidate in (value, getattr(value, "input", None)):
        rid = getattr(candidate, "request_id", None)
        if isinstance(rid, str):
            return rid
    return None


def stage(
    name: str, describe: Callable[[Any], Attributes] | None = None
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Trace an async pipeline method as span ``expertgate.<name>``.

    The request id is taken from the method's first argument (ChatInput or Routed);
    ``describe(result)`` adds attributes about what the stage decided. An exception is
    recorded on the span and propagates unchanged.
    """

    def decorate(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(method)
        async def traced(self: object, *args: Any, **kwargs: Any) -> T:
            tracer = _tracer
            if tracer is None:
                return await method(self, *args, **kwargs)
            with tracer.start_as_current_span(f"expertgate.{name}", attributes=_base(name, args)) as span:
                result = await method(self, *args, **kwargs)
                if describe is not None:
                    span.set_attributes(dict(describe(result)))
                return result

        return traced

    return decorate


async def traced_stream(
    name: str, request_id: str, events: AsyncIterator[E], describe: Callable[[E], Attributes] | None = None
) -> AsyncIterator[E]:
    """Yield ``events`` unchanged inside span ``expertgate.<name>`` (ended with the stream).

    ``describe`` is applied to every event and may return {} for most of them.
    """
    tracer = _tracer
    if tracer is None:
        async for event in events:
            yield event
        return
    span = tracer.start_span(f"expertgate.{name}", attributes={"expertgate.stage": name, REQUEST_ID: request_id})
    try:
        async for event in events:
            if describe is not None:
                span.set_attributes(dict(describe(event)))
            yield event
    except BaseException as exc:
        _record_error(span, exc)
        raise
    finally:
        span.end()


def _base(name: str, args: tuple[Any, ...]) -> dict[str, str]:
    attributes = {"expertgate.stage": name}
    rid = _request_id(args[0]) if args else None
    if rid is not None:
        attributes[REQUEST_ID] = rid
    return attributes


def _record_error(span: Span, exc: BaseException) -> None:
    if isinstance(exc, Exception):
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


class TracingMiddleware:
    """The root span of each HTTP request (``METHOD path``), when tracing is on.

    Attributes: http.request.method, url.path, http.response.status_code and the
    request id the response carries back (X-Request-ID). A valid ``traceparent`` header
    continues the caller's trace when ``continue_traces``; a malformed one is ignored (a
    new trace starts).
    """

    def __init__(self, app: ASGIApp, continue_traces: bool = True) -> None:
        self.app = app
        self.continue_traces = continue_traces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _tracer
        if tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        parent = None
        if self.continue_traces:
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _TRACE_HEADERS}
            parent = _TRACE_CONTEXT.extract(carrier) if carrier else None
        with tracer.start_as_current_span(
            f"{scope['method']} {scope['path']}", context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    for key, value in message.get("headers", []):
                        if key.lower() == b"x-request-id":
                            span.set_attribute(REQUEST_ID, value.decode("latin-1"))
                    if message["status"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, traced_send)


# -- what each stage decided, as span attributes -------------------------------------------
def describe_routed(result: object) -> Attributes:
    """Of a Routed, or an (Routed, grant) pair from admission: the decision."""
    routed = result[0] if isinstance(result, tuple) else result
    decision: RoutingDecision = getattr(routed, "decision")  # noqa: B009 (Routed lives in the pipeline)
    return {
        "expertgate.expert": decision.expert,
        "expertgate.reason": str(decision.reason),
        "expertgate.confidence": float(decision.confidence),
        "expertgate.router_version": decision.router_version,
    }


def describe_retrieval(retrieval: Retrieval) -> Attributes:
    attributes: dict[str, str | int | float | bool] = {
        "expertgate.passages": len(retrieval.passages),
        "expertgate.domains": ",".join(retrieval.domains),
    }
    if retrieval.degraded:
        attributes["expertgate.degraded"] = retrieval.degraded
    return attributes


def describe_answer(answer: ExpertAnswer) -> Attributes:
    return _usage(answer.expert, answer.completion.model, answer.completion.usage, len(answer.fallbacks))


def describe_stream_event(event: object) -> Attributes:
    """Attributes from the events that carry any: the opening and the final one."""
    if isinstance(event, StreamStart):
        return {"expertgate.expert": event.expert, "expertgate.fallbacks": len(event.fallbacks)}
    if isinstance(event, StreamDone):
        return {"gen_ai.response.model": event.model, **_tokens(event.usage)}
    return {}


def describe_conversation(conversation_id: str) -> Attributes:
    return {"expertgate.conversation_id": conversation_id}


def _usage(expert: str, model: str, usage: Usage, fallbacks: int) -> Attributes:
    return {"expertgate.expert": expert, "gen_ai.response.model": model, "expertgate.fallbacks": fallbacks,
            **_tokens(usage)}  # fmt: skip


def _tokens(usage: Usage) -> dict[str, int]:
    return {"gen_ai.usage.input_tokens": usage.prompt_tokens, "gen_ai.usage.output_tokens": usage.completion_tokens}
