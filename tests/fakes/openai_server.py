"""A real OpenAI-compatible HTTP server on loopback with scripted replies and faults.

Tests point experts at ``server.api_base`` so litellm's real client path runs. Each
request pops the next scripted behaviour (or uses the default reply):

    server.script(Reply("hello"), Fault(503), Reply("after retry", delay_s=0.5))

Every request body is recorded in ``server.requests``.

``Echo()`` (as a scripted behaviour or as ``FakeOpenAI(default=Echo())``) is a model
that complies with anything: its answer repeats every message it was given (system
prompt, passages, history, the question), so whatever reaches the model reaches the
answer. The red-team suite (tests/redteam) uses it to check what the product lets out.

With ``vllm=VllmSurface(...)`` the server also speaks vLLM's OpenAI entrypoint where it
differs from OpenAI: ``/v1/models`` lists the served name with vLLM's model card fields
(``owned_by: vllm``, ``root``, ``max_model_len``), an unknown model is vLLM's 404, and a
prompt (plus ``max_tokens``) longer than ``max_model_len`` is vLLM's 400 with its error
envelope ``{"error": {"message", "type": "BadRequestError", "param", "code": 400}}``.
Prompt length is estimated at 4 characters a token (vLLM counts with the tokenizer).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.http_server import LoopbackServer


@dataclass(frozen=True)
class Reply:
    text: str
    delay_s: float = 0.0
    prompt_tokens: int = 11
    # Streaming: break the connection after this many content chunks (None = never).
    break_after: int | None = None
    # Answer only once the test sets this event (requests that must pile up), after delay_s.
    hold: threading.Event | None = None
    # Set by the server when the request this reply answers has arrived (before delay_s
    # and hold): what a test waits for instead of sleeping until "the model is busy".
    received: threading.Event | None = None
    # Why the model stopped ("length": cut at max_tokens).
    finish_reason: str = "stop"
    # Streaming: end the stream cleanly ([DONE]) after this many content chunks, with no
    # finish reason: what a server that interrupts a running answer sends.
    end_early: int | None = None
    # Streaming: this many words per content chunk (a long answer in fewer chunks).
    words_per_chunk: int = 1


@dataclass(frozen=True)
class Echo:
    """Answer with the request's messages, each as ``<role>: <content>`` on its own
    paragraph, in the order received. ``roles``: only these roles' messages (None:
    every one)."""

    roles: tuple[str, ...] | None = None
    finish_reason: str = "stop"
    words_per_chunk: int = 1  # streamed: words per content chunk

    def reply(self, body: dict[str, Any]) -> Reply:
        parts = [
            f"{m.get('role')}: {m.get('content') or ''}"
            for m in body.get("messages", [])
            if self.roles is None or m.get("role") in self.roles
        ]
        return Reply("\n\n".join(parts), finish_reason=self.finish_reason, words_per_chunk=self.words_per_chunk)


@dataclass(frozen=True)
class Fault:
    status: int
    message: str = "injected fault"
    delay_s: float = 0.0


@dataclass(frozen=True)
class VllmSurface:
    """What a `vllm serve <root> --served-model-name <served_model>` would answer."""

    served_model: str = "qwen3-moe"
    root: str = "Qwen/Qwen3-30B-A3B"
    max_model_len: int = 4096

    def error(self, status: int, kind: str, message: str, param: str | None = None) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": message, "type": kind, "param": param, "code": status}}, status_code=status
        )

    def refusal(self, body: dict[str, Any]) -> JSONResponse | None:
        """vLLM's error for a request it would refuse before generating, else None."""
        if body.get("model") != self.served_model:
            return self.error(404, "NotFoundError", f"The model `{body.get('model')}` does not exist.", "model")
        prompt = sum(len(str(m.get("content") or "")) // 4 + 4 for m in body.get("messages", []))
        completion = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        if prompt + completion > self.max_model_len:
            return self.error(
                400,
                "BadRequestError",
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
                "Please reduce the length of the messages or completion.",
            )
        return None

    def models(self) -> dict[str, Any]:
        created = int(time.time())
        card = {
            "id": self.served_model,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": self.root,
            "parent": None,
            "max_model_len": self.max_model_len,
            "permission": [
                {
                    "id": "modelperm-fake",
                    "object": "model_permission",
                    "created": created,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ],
        }
        return {"object": "list", "data": [card]}


@dataclass
class FakeOpenAI:
    default: Reply | Echo = field(default_factory=lambda: Reply("This is the fake model's answer."))
    vllm: VllmSurface | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # of each chat request, as received
    _queue: deque[Reply | Fault | Echo] = field(default_factory=deque)
    _http: LoopbackServer | None = None
    port: int = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *behaviours: Reply | Fault | Echo) -> None:
        self._queue.extend(behaviours)

    def reset(self) -> None:
        self._queue.clear()
        self.requests.clear()
        self.headers.clear()

    def _next(self) -> Reply | Fault | Echo:
        return self._queue.popleft() if self._queue else self.default

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        refusal = self.vllm.refusal(body) if self.vllm is not None else None
        if refusal is not None:
            return refusal
        behaviour = self._next()
        if isinstance(behaviour, Echo):
            behaviour = behaviour.reply(body)
        if isinstance(behaviour, Reply) and behaviour.received is not None:
            behaviour.received.set()
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        if isinstance(behaviour, Reply) and behaviour.hold is not None:
            await asyncio.to_thread(behaviour.hold.wait, 60)
        if isinstance(behaviour, Fault):
            return JSONResponse(
                {"error": {"message": behaviour.message, "type": "server_error", "code": None}},
                status_code=behaviour.status,
            )
        words = behaviour.text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        if behaviour.words_per_chunk > 1:
            step = behaviour.words_per_chunk
            pieces = ["".join(pieces[i : i + step]) for i in range(0, len(pieces), step)]
        usage = {
            "prompt_tokens": behaviour.prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": behaviour.prompt_tokens + len(pieces),
        }
        model = body.get("model", "fake")
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "fake-1",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": behaviour.text},
                            "finish_reason": behaviour.finish_reason,
                        }
                    ],
                    "usage": usage,
                }
            )

        async def events() -> Any:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                payload = {
                    "id": "fake-1",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return f"data: {json.dumps(payload)}\n\n".encode()

            yield chunk({"role": "assistant", "content": ""})
            for i, piece in enumerate(pieces):
                if behaviour.break_after is not None and i >= behaviour.break_after:
                    raise ConnectionResetError("injected broken stream")
                if behaviour.end_early is not None and i >= behaviour.end_early:
                    yield b"data: [DONE]\n\n"
                    return
                yield chunk({"content": piece})
                await asyncio.sleep(0)
            yield chunk({}, behaviour.finish_reason)
            if (body.get("stream_options") or {}).get("include_usage"):
                tail = {
                    "id": "fake-1",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(tail)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _models(self, _: Request) -> Response:
        if self.vllm is not None:
            return JSONResponse(self.vllm.models())
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def start(self) -> FakeOpenAI:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models),
            ]
        )
        self._http = LoopbackServer.start(app, "fake OpenAI server")
        self.port = self._http.port
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
