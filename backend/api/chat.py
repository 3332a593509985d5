"""/v1: the OpenAI-compatible surface. Parse, call the pipeline, map the result."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from backend.api.deps import PipelineDep, PrincipalDep, RegistryDep, StartedAtDep
from backend.api.schemas.chat import (
    CacheOut,
    ChatCompletion,
    ChatRequest,
    Choice,
    Citation,
    FallbackOut,
    GroundingOut,
    ModelCard,
    ModelList,
    ResponseMessage,
    ReviewRef,
    RouteBody,
    RouteInfo,
    RouteResponse,
    UsageOut,
)
from backend.audit.types import CLIENT_CLOSED
from backend.chat.pipeline import AnswerStream, ChatResult, Question, Routed, StreamFinished, StreamOpened
from backend.errors import AppError, BadRequest, NotFound, to_app_error
from backend.knowledge.types import NO_RETRIEVAL, Retrieval
from backend.principal import Principal
from backend.review.types import HeldReview
from experts.registry import AUTO, ExpertRegistry
from experts.types import FallbackStep, TextDelta

routes = APIRouter(prefix="/v1", tags=["openai"])
T = TypeVar("T")


def _route_info(
    routed: Routed,
    *,
    expert: str | None = None,
    fallbacks: tuple[FallbackStep, ...] = (),
    conversation_id: str | None = None,
    upstream_model: str | None = None,
    retrieval: Retrieval = NO_RETRIEVAL,
    grounding: Mapping[str, object] | None = None,
    review: HeldReview | None = None,
    cache: Mapping[str, object] | None = None,
) -> RouteInfo:
    d = routed.decision
    return RouteInfo(
        expert=expert or d.expert,
        confidence=d.confidence,
        reason="fallback" if fallbacks else str(d.reason),
        detail=d.detail,
        router_version=d.router_version,
        top_k=list(d.top_k),
        probabilities=dict(d.probabilities),
        citations=[
            Citation(
                number=p.number,
                title=p.title,
                source=p.source,
                snippet=p.snippet,
                score=p.score,
                location=p.location or None,
                document_id=p.document_id,
            )
            for p in retrieval.passages
        ],
        fallbacks=[FallbackOut(expert=f.expert, error=f.error) for f in fallbacks],
        request_id=routed.input.request_id,
        conversation_id=conversation_id,
        upstream_model=upstream_model,
        grounding=None if grounding is None else GroundingOut.model_validate(grounding),
        review=None if review is None else ReviewRef.model_validate(review.ref()),
        cache=None if cache is None else CacheOut.model_validate(cache),
    )


def _question(principal: Principal, body: ChatRequest, *, cache: bool = True) -> Question:
    return Question(
        principal,
        body.model,
        [(m.role, m.text()) for m in body.messages],
        conversation_id=body.conversation_id,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        cache=cache,
    )


@routes.post("/chat/completions", response_model=ChatCompletion, operation_id="createChatCompletion")
async def chat_completions(
    body: ChatRequest, principal: PrincipalDep, pipeline: PipelineDep, request: Request
) -> Response:
    # Cache-Control: no-cache: a fresh answer, not one from the response cache.
    no_cache = "no-cache" in request.headers.get("cache-control", "").lower()
    question = _question(principal, body, cache=not no_cache)
    if body.stream:  # bad input, quota and capacity refusals are raised before the body starts
        stream = await pipeline.open_stream(question)
        headers = {"cache-control": "no-cache", "x-request-id": stream.request_id, **stream.headers}
        return ClosingStream(_sse(stream), stream.aclose, headers=headers)
    try:
        result = await _unless_disconnected(request, pipeline.answer(question))
    except ClientDisconnected:
        # Nobody is listening; the pipeline audited the request as aborted (499).
        return Response(status_code=CLIENT_CLOSED)
    return Response(
        orjson.dumps(_completion_body(result).model_dump()),
        media_type="application/json",
        headers={"x-request-id": result.request_id, **result.headers},
    )


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``, cancelled if the client disconnects first (raises ClientDisconnected).

    A plain (non-streamed) answer is otherwise generated to the end for nobody, holding
    the expert's capacity and recorded as a 200 the client never got. Once FastAPI has
    read the body, the next ASGI message is ``http.disconnect``, when it comes.
    """

    async def watch(scope: anyio.CancelScope) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    with anyio.CancelScope() as scope:
        watcher = asyncio.create_task(watch(scope))
        try:
            return await work
        finally:
            watcher.cancel()
    raise ClientDisconnected  # the scope was cancelled: the client left


def _completion_body(result: ChatResult) -> ChatCompletion:
    completion = result.answer.completion
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=result.answer.expert,
        choices=[
            Choice(
                message=ResponseMessage(content=completion.text),
                finish_reason=completion.finish_reason,
            )
        ],
        usage=UsageOut(
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            total_tokens=completion.usage.total_tokens,
        ),
        expertgate=_route_info(
            result.routed,
            expert=result.answer.expert,
            fallbacks=result.answer.fallbacks,
            conversation_id=result.conversation_id,
            upstream_model=completion.model,
            retrieval=result.retrieval,
            grounding=result.grounding,
            review=result.review,
            cache=result.cache,
        ),
    )


class ClosingStream(StreamingResponse):
    """A server-sent-event response that always runs ``close`` when it ends, also when
    its body was never started (the client left before the first byte, or sending the
    headers failed): Starlette closes only a body it began iterating."""

    def __init__(
        self, body: AsyncIterator[bytes], close: Callable[[], Awaitable[None]], headers: dict[str, str]
    ) -> None:
        self._close = close
        super().__init__(body, media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._close()


async def _sse(stream: AnswerStream) -> AsyncIterator[bytes]:
    """OpenAI-style SSE: chunks, then ``[DONE]``. A failure becomes an ``error`` event."""
    routed = stream.routed
    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    expert = routed.decision.expert
    fallbacks: tuple[FallbackStep, ...] = ()

    def frame(payload: Mapping[str, object]) -> bytes:
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: object) -> bytes:
        return frame(
            {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": expert,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
        )

    try:
        async for event in stream:
            if isinstance(event, StreamOpened):
                expert, fallbacks = event.expert, event.fallbacks
                # A conversation the request continues exists (routing checked it is the
                # caller's); a new one is created only when the answer is recorded, after
                # the text: its id is in the last chunk alone.
                info = _route_info(
                    routed, expert=expert, fallbacks=fallbacks, retrieval=event.retrieval, cache=event.cache,
                    conversation_id=routed.input.conversation_id,
                )  # fmt: skip
                yield chunk({"role": "assistant", "content": ""}, expertgate=info.model_dump())
            elif isinstance(event, TextDelta):
                yield chunk({"content": event.text})
            elif isinstance(event, StreamFinished):
                info = _route_info(
                    routed,
                    expert=expert,
                    fallbacks=fallbacks,  # the last chunk tells the same story as the first
                    conversation_id=event.conversation_id,
                    upstream_model=event.model,
                    retrieval=event.retrieval,
                    grounding=event.grounding,
                    review=event.review,
                    cache=event.cache,
                )
                usage = {
                    "prompt_tokens": event.usage.prompt_tokens,
                    "completion_tokens": event.usage.completion_tokens,
                    "total_tokens": event.usage.total_tokens,
                }
                yield chunk({}, event.finish_reason, usage=usage, expertgate=info.model_dump())
    except Exception as exc:
        app_error = to_app_error(exc)
        if app_error is None:
            app_error = AppError("internal error while streaming the answer")
        yield frame(app_error.body())
    yield b"data: [DONE]\n\n"


def _model_cards(registry: ExpertRegistry, created: int) -> list[ModelCard]:
    """``auto``, then every expert in registry order."""
    cards = [ModelCard(id=AUTO, created=created, description="Route each request to the best expert.")]
    return cards + [ModelCard(id=s.name, created=created, description=s.description) for s in registry]


@routes.get("/models", response_model=ModelList, operation_id="listModels")
async def list_models(_: PrincipalDep, started_at: StartedAtDep, registry: RegistryDep) -> ModelList:
    return ModelList(data=_model_cards(registry, started_at))


@routes.get("/models/{model_id}", response_model=ModelCard, operation_id="retrieveModel")
async def retrieve_model(model_id: str, _: PrincipalDep, started_at: StartedAtDep, registry: RegistryDep) -> ModelCard:
    """One entry of ``GET /v1/models``; 404 ``model_not_found`` for an id it does not list."""
    card = next((c for c in _model_cards(registry, started_at) if c.id == model_id), None)
    if card is None:
        raise NotFound(f"there is no model {model_id!r}; GET /v1/models lists them", code="model_not_found")
    return card


@routes.post("/route", response_model=RouteResponse, operation_id="routeRequest")
async def route(body: RouteBody, principal: PrincipalDep, pipeline: PipelineDep) -> RouteResponse:
    if (body.text is None) == (body.messages is None):
        raise BadRequest("send exactly one of 'text' or 'messages'", param="text")
    messages = [("user", body.text)] if body.text is not None else [(m.role, m.text()) for m in body.messages or []]
    question = Question(principal, body.model, messages, conversation_id=body.conversation_id)
    routed = await pipeline.route_only(question)
    return RouteResponse(expertgate=_route_info(routed, conversation_id=body.conversation_id))
