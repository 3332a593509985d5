"""The FastAPI application factory. Everything heavy is built in the lifespan."""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api import (
    audit,
    auth,
    breakers,
    chat,
    conversations,
    gate,
    health,
    identity,
    knowledge,
    metrics,
    quotas,
    reviews,
    safety,
    stats,
    users,
)  # fmt: skip
from backend.api.deps import authenticate
from backend.api.slack import close_slack, install_slack
from backend.api.spa import install_spa
from backend.audit.refusals import record_refusal
from backend.audit.writer import is_recorded
from backend.bootstrap import bootstrap_admin
from backend.errors import ERROR_TABLE, AppError, BadRequest, NotFound, PayloadTooLarge, to_app_error
from backend.gate.reload import GateReloader
from backend.gate.wiring import router_store
from backend.observability.logs import RequestIdMiddleware
from backend.observability.tracing import TracingMiddleware, setup_tracing, shutdown_tracing
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings

log = logging.getLogger(__name__)

# Every HTTP route of the app (backend/api/), in the order the OpenAPI schema lists them.
ROUTES = (
    chat.routes, health.routes, conversations.routes, reviews.routes, safety.routes, audit.routes,
    identity.routes, users.routes, stats.routes, knowledge.routes, gate.routes, metrics.routes,
    breakers.routes, quotas.routes, quotas.me_routes, auth.routes,
)  # fmt: skip


def framework_error(status: int, detail: str) -> AppError:
    """The AppError for an HTTP error raised by FastAPI or Starlette themselves."""
    if status == 400:  # FastAPI could not parse the body (binary, bad UTF-8, nesting too deep)
        return BadRequest("the request body could not be parsed: send one JSON document, encoded as UTF-8")
    if status == 404:
        return NotFound("no such path" if detail == "Not Found" else detail)
    error = AppError(detail, code={405: "method_not_allowed"}.get(status, f"http_{status}"))
    error.status = status
    if status < 500:
        error.type = "invalid_request_error"
    return error


def validation_error(errors: Sequence[Mapping[str, Any]], route: object = None) -> BadRequest:
    """The 400 for a request FastAPI could not validate: the first error, as a sentence.

    ``param`` names the field at fault, or is None when the body as a whole is wrong (it
    is not JSON, empty, or JSON but not an object). ``route``: the matched route, whose
    body model's required fields the whole-body messages name.
    """
    # A check of ours (value_error) says more than a union branch the input did not take.
    first = next((e for e in errors if e.get("type") == "value_error"), errors[0] if errors else None)
    if first is None:
        return BadRequest("The request body is not valid.")
    kind, where = first.get("type"), tuple(first.get("loc", ()))
    if kind == "json_invalid":
        # FastAPI's loc is ("body", offset of the decode error): a position, not a field.
        at = where[1] if len(where) > 1 and isinstance(where[1], int) else None
        return BadRequest(f"The request body is not valid JSON{'' if at is None else f' (at character {at})'}.")
    if where == ("body",) and kind == "missing":
        return BadRequest(f"The request body is empty: send {_object_with(route)}.")
    if where == ("body",):  # null, a string, a list, a number, or text that is not JSON
        return BadRequest(f"The request body must be {_object_with(route)}.")
    # Union branches appear in the path as type names ("list[TextPart]"): not fields.
    loc = [str(p) for p in where if p != "body" and "[" not in str(p)]
    param = ".".join(loc) or None
    msg = str(first["msg"]).removeprefix("Value error, ")
    return BadRequest(f"{param}: {msg}" if param else msg, param=param)


def _object_with(route: object) -> str:
    """'a JSON object with model and messages': what the route's body model requires."""
    body = route.body_field if isinstance(route, APIRoute) else None
    model = body.field_info.annotation if body is not None else None
    fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
    required = [name for name, field in fields.items() if field.is_required()]
    if not required:
        return "a JSON object"
    names = required[0] if len(required) == 1 else f"{', '.join(required[:-1])} and {required[-1]}"
    return f"a JSON object with {names}"


def _error_response(error: AppError) -> Response:
    headers = {}
    retry_after = error.retry_after_s  # 429 quota, 503 capacity / LLM down, 504 deadline
    if retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    return Response(
        orjson.dumps(error.body()), status_code=error.status, media_type="application/json",
        headers=headers,
    )  # fmt: skip


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before they are parsed.

    ``overrides`` maps exact paths to their own limit (document uploads are larger).
    """

    def __init__(self, app: ASGIApp, limit: int, overrides: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = limit
        self.overrides = dict(overrides or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope["path"], self.default_limit)
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > limit
        seen = 0

        async def limited() -> Message:
            # The route reads the body after its path and method matched; the refusal
            # then goes through the app's handlers (authentication first, the audit).
            nonlocal seen
            if too_large:
                raise BodyTooLarge(limit)
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # a chunked body declares no length
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


class BodyTooLarge(Exception):
    """A request body over its limit (raised while the route reads it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body over {limit} bytes")
        self.error = PayloadTooLarge(f"the request body is larger than {limit} bytes", code="request_too_large")


async def _refused_at_the_edge(request: Request, error: AppError, exc: Exception) -> Response:
    """``error`` for a request the framework refused before its route ran (a body it
    cannot read or that is too large, an unknown path or method, JSON that does not
    parse). On the API, the caller is authenticated first: an anonymous caller learns
    only that it must authenticate (401); an authenticated one gets ``error``, audited
    as ``http.refused`` like any refusal. Errors the route's own dependencies already
    audited are not audited twice."""
    runtime = getattr(request.app.state, "runtime", None)  # None: not started yet
    if runtime is not None and request.url.path.startswith(_API_PREFIXES) and not is_recorded(exc):
        try:
            principal = await authenticate(request)
        except AppError as refused:
            return _error_response(refused)
        await record_refusal(runtime.db, runtime.audit, principal, error, method=request.method, path=request.url.path)
    return _error_response(error)


_API_PREFIXES = ("/v1/", "/api/")


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """The ASGI app. With no ``runtime``, the lifespan builds one from ``settings``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        built: Runtime
        if runtime is None:
            built = await anyio.to_thread.run_sync(build_runtime, settings)
        else:
            built = runtime
        app.state.runtime = built
        tracing = setup_tracing(settings) if owned else None
        if owned and settings.bootstrap_admin:
            await bootstrap_admin(built.db, settings, built.audit)
        if owned:
            # Load every domain's index now (rebuilding from SQL if missing, corrupt or
            # stale) rather than on the first question.
            await built.knowledge.service.start()
            # litellm's first call imports and loads ~0.26 s of modules and tokenizer
            # tables; done here, no first request of this process waits for them.
            try:
                await built.experts.warm()
            except Exception:  # an optimisation: serving does not depend on it
                log.warning("LLM client warm-up failed; the first request will load it", exc_info=True)
            # The models, indexes and libraries loaded so far live as long as the process:
            # moved out of the collector's sight, a full collection no longer walks them.
            # Left in, it walked ~790,000 objects for ~400 ms with the event loop stopped,
            # every few seconds under load (the multi-hundred-ms tail in docs/load.md).
            gc.collect()
            gc.freeze()
        reloader = GateReloader(built.gate, router_store(settings), built.registry, settings.router_reload_s)
        try:
            async with anyio.create_task_group() as background:
                background.start_soon(reloader.run)
                background.start_soon(built.chainer.run)  # audit outbox -> chain; drains at start
                if owned and built.tasks is None:  # jobs run inline: none waits for a dead process
                    background.start_soon(built.knowledge.jobs.resume_orphans)
                try:
                    yield
                finally:
                    background.cancel_scope.cancel()
        finally:
            # Outside the task group: a cancelled scope must not cancel the shutdown itself.
            await close_slack(app)  # lets in-flight Slack answers finish
            await built.pipeline.recorder.finish()
            await built.chainer.settle()  # chain what the last requests left in the outbox
            if owned:
                shutdown_tracing(tracing)
                await built.close()

    app = FastAPI(
        title="expertgate",
        version="0.1.0",
        lifespan=lifespan,
        description="Domain-routed enterprise assistant (OpenAI-compatible at /v1).",
    )
    for routes in ROUTES:
        app.include_router(routes)
    install_slack(app, settings)  # POST /slack/events, when Slack is configured
    # The built web UI answers GETs that no route matched (never shadows a route).
    install_spa(app, settings.web_dir)

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> Response:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _framework(request: Request, exc: StarletteHTTPException) -> Response:
        """The framework's own refusals (a body it cannot parse, an unknown path or
        method) in the error table's shape, not FastAPI's ``{"detail": ...}``."""
        if isinstance(exc.__cause__, BodyTooLarge):  # FastAPI reports it as a body it could not parse
            return await _refused_at_the_edge(request, exc.__cause__.error, exc)
        return await _refused_at_the_edge(request, framework_error(exc.status_code, str(exc.detail)), exc)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
        return await _refused_at_the_edge(request, exc.error, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return await _refused_at_the_edge(request, validation_error(exc.errors(), request.scope.get("route")), exc)

    async def _mapped(_: Request, exc: Exception) -> Response:
        mapped = to_app_error(exc)
        if mapped is None:  # a row of ERROR_TABLE always matches the types registered below
            log.exception("unmapped error")
            return JSONResponse(AppError("internal error").body(), status_code=500)
        return _error_response(mapped)

    for source, _target, _code in ERROR_TABLE:
        app.add_exception_handler(source, _mapped)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return JSONResponse(AppError("internal error").body(), status_code=500)

    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        overrides={"/api/v1/documents": settings.upload_max_bytes},
    )
    app.add_middleware(RequestIdMiddleware)
    # Outermost: the request's root span covers everything, the request id included.
    app.add_middleware(TracingMiddleware, continue_traces=settings.otel_continue_traces)
    return app
