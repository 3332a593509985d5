"""JSON logs carry the request id that the middleware sets and returns."""

from __future__ import annotations

import io
import json
import logging

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from backend.observability.logs import JsonFormatter, RequestIdMiddleware, use_json


def _app(logger: logging.Logger) -> Starlette:
    async def hello(_: Request) -> PlainTextResponse:
        logger.info("answering %s", "hello")
        return PlainTextResponse("hi")

    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(RequestIdMiddleware)
    return app


async def test_request_id_is_kept_or_made_and_lands_in_json_logs() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.eg.logs")
    logger.handlers[:] = [logging.StreamHandler(stream)]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    use_json(logger)
    transport = httpx.ASGITransport(app=_app(logger))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        given = await client.get("/hello", headers={"x-request-id": "abc-123"})
        made = await client.get("/hello")
        bad = await client.get("/hello", headers={"x-request-id": "no spaces {allowed}"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert bad.headers["x-request-id"] not in ("no spaces {allowed}", made.headers["x-request-id"])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == [
        "abc-123",
        made.headers["x-request-id"],
        bad.headers["x-request-id"],
    ]
    assert lines[0]["message"] == "answering hello" and lines[0]["level"] == "info"


def test_json_formatter_outside_a_request_has_no_id_and_keeps_tracebacks() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info()
        )
    entry = json.loads(JsonFormatter().format(record))
    assert "request_id" not in entry
    assert "RuntimeError: boom" in entry["exc"]


async def test_an_id_set_by_the_app_is_not_replaced() -> None:
    async def own(_: Request) -> PlainTextResponse:
        return PlainTextResponse("hi", headers={"x-request-id": "chat-1"})

    app = Starlette(routes=[Route("/own", own)])
    app.add_middleware(RequestIdMiddleware)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/own", headers={"x-request-id": "caller-9"})
    assert r.headers.get_list("x-request-id") == ["chat-1"]
