"""The least a Python gateway in front of the stub can be: two bare ASGI apps.

bench/load/floor.py serves these with uvicorn, as ``expertgate serve`` is served (same
worker count, uvicorn's default loop and HTTP parser), to show what issue 10's
pass-through goals ask of a gateway on this machine before it does anything of its own:

- ``httpx``    reads the request and posts its bytes, untouched, to the stub with one
               shared ``httpx.AsyncClient``; answers with the stub's bytes. No JSON
               parsed, no auth, nothing written: the floor of any Python gateway.
- ``litellm``  parses the request, calls the stub through expertgate's own
               ``experts.llm.LiteLLMClient`` (litellm's ``acompletion``, warmed and told
               of the endpoint as the server does at start-up) and answers with an
               OpenAI body built from the completion. No auth, quota, audit, routing:
               the floor of a gateway whose every LLM call goes through litellm, as
               ARCHITECTURE.md requires of expertgate.

Configured by environment: ``FLOOR_MODE`` (httpx | litellm), ``FLOOR_UPSTREAM`` (the
stub's /v1 URL), ``FLOOR_MODEL`` (the litellm model name, e.g. ``hosted_vllm/stub-model``).
Not part of the product; nothing imports it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

JSON_HEADERS = [(b"content-type", b"application/json")]


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send, start: Callable[[], Awaitable[None]]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _gateway(start: Callable[[], Awaitable[None]], forward: Callable[[bytes], Awaitable[tuple[int, bytes]]]) -> ASGIApp:
    """The ASGI app both floors share: ``start`` at lifespan startup (in the worker's event
    loop), ``forward`` for each chat completion's body (status and body of the answer),
    any other path answered at once (the readiness probe)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, start)
            return
        body = await _body(receive)
        if scope["path"] != "/v1/chat/completions":
            await _answer(send, 200, b'{"ok":true}')
            return
        status, answer = await forward(body)
        await _answer(send, status, answer)

    return app


def httpx_app(upstream: str) -> ASGIApp:
    import httpx

    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    client: httpx.AsyncClient | None = None

    async def start() -> None:
        nonlocal client
        client = httpx.AsyncClient(base_url=upstream, limits=limits, timeout=30)

    async def forward(body: bytes) -> tuple[int, bytes]:
        assert client is not None, "lifespan startup has run"
        r = await client.post("/chat/completions", content=body, headers={"content-type": "application/json"})
        return r.status_code, r.content

    return _gateway(start, forward)


def litellm_app(upstream: str, model: str) -> ASGIApp:
    from experts.llm import LiteLLMClient
    from experts.registry import GenerationParams
    from experts.types import ChatMessage, Endpoint

    llm = LiteLLMClient()
    endpoint = Endpoint(model=model, api_base=upstream, api_key="sk-stub", timeout_s=30, connect_timeout_s=5)

    async def start() -> None:
        await llm.warm([endpoint])

    async def forward(body: bytes) -> tuple[int, bytes]:
        request = json.loads(body)
        messages = [ChatMessage(m["role"], m["content"]) for m in request["messages"]]
        params = GenerationParams(max_tokens=int(request.get("max_tokens") or 64))
        done = await llm.complete("general", endpoint, messages, params)
        answer = {
            "id": "chatcmpl-floor",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": done.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": done.text},
                    "finish_reason": done.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": done.usage.prompt_tokens,
                "completion_tokens": done.usage.completion_tokens,
                "total_tokens": done.usage.prompt_tokens + done.usage.completion_tokens,
            },
        }
        return 200, json.dumps(answer).encode()

    return _gateway(start, forward)


def create() -> ASGIApp:
    """uvicorn's factory (``--factory``): the app ``FLOOR_MODE`` names."""
    upstream = os.environ["FLOOR_UPSTREAM"]
    mode = os.environ.get("FLOOR_MODE", "httpx")
    if mode == "httpx":
        return httpx_app(upstream)
    if mode == "litellm":
        return litellm_app(upstream, os.environ["FLOOR_MODEL"])
    raise SystemExit(f"FLOOR_MODE must be httpx or litellm, not {mode!r}")
