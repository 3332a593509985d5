"""Fault injection on the LLM path (issue 25): the fake OpenAI server answers empty,
stops streams without a finish reason, cuts at the token cap, refuses a long prompt,
hangs; clients leave. For each: a clear status, nothing recorded as a success that was
not, one audit event per request."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.backend.api.test_chat_api import count_rows, sse_events
from tests.conftest import audit_events, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Fault, Reply

pytestmark = pytest.mark.faults

LEGAL = "what does the liability cap clause in our master services agreement say?"


def ask(text: str = LEGAL, model: str = "auto", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def stream_text(events: list[dict | str]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content", "") for e in events if isinstance(e, dict) and "choices" in e
    )


async def chat_events(runtime: Runtime) -> list[Any]:
    return await audit_events(runtime, action="chat.completion")


# -- answers that are not whole -------------------------------------------------------


async def test_an_empty_answer_fails_over_to_the_generalist(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    llm.script(Reply(""), Reply("The generalist answers."))
    r = await client.post("/v1/chat/completions", json=ask())
    assert r.status_code == 200, r.text
    eg = r.json()["expertgate"]
    assert (eg["expert"], eg["reason"]) == ("general", "fallback")
    assert "empty answer" in eg["fallbacks"][0]["error"]
    (event,) = await chat_events(runtime)
    assert event.outcome == "ok" and event.payload["completeness"] == "complete"


async def test_an_empty_answer_from_a_named_expert_is_a_503_not_a_success(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    llm.script(Reply("   \n"))
    r = await client.post("/v1/chat/completions", json=ask(model="legal"))
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "answer_incomplete"
    assert int(r.headers["retry-after"]) >= 1
    assert await count_rows(runtime) == (0, 0)
    (event,) = await chat_events(runtime)
    assert (event.outcome, event.status) == ("error", 503)
    assert event.payload["completeness"] == "none"


async def test_an_empty_stream_fails_over_before_anything_is_sent(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    llm.script(Reply(""), Reply("The generalist answers."))
    r = await client.post("/v1/chat/completions", json=ask(stream=True))
    events = sse_events(r.text)
    assert stream_text(events) == "The generalist answers."
    first, last = events[0], events[-2]
    assert isinstance(first, dict) and first["expertgate"]["expert"] == "general"
    # The last chunk tells the same story as the first (it said "routed" before).
    assert isinstance(last, dict) and last["expertgate"]["reason"] == "fallback"
    assert last["expertgate"]["fallbacks"][0]["expert"] == "legal"
    (event,) = await chat_events(runtime)
    assert event.outcome == "ok" and event.reason == "fallback"


async def test_a_stream_the_server_stops_mid_answer_ends_in_an_error_and_is_not_ok(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    # What llama.cpp's server sent when another request interrupted a running answer:
    # a clean end of stream, without the model's finish reason.
    answer = "Section nine caps liability at twelve months of fees paid before the claim, " * 3
    llm.script(Reply(answer, end_early=30))
    r = await client.post("/v1/chat/completions", json=ask(stream=True))
    events = sse_events(r.text)
    sent = stream_text(events)
    # What was sent before the cut (the output check holds back the last few words).
    assert sent and answer.startswith(sent) and len(sent) < len(answer)
    error = events[-2]
    assert isinstance(error, dict) and error["error"]["code"] == "answer_incomplete"
    assert events[-1] == "[DONE]"
    assert await count_rows(runtime) == (0, 0)  # no conversation holds half an answer
    (event,) = await chat_events(runtime)
    assert event.outcome == "error"
    assert event.payload["completeness"] == "interrupted"
    assert event.answer == sent


async def test_an_answer_cut_at_the_token_cap_is_marked(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    llm.script(Reply("Section nine caps liability at", finish_reason="length"))
    r = await client.post("/v1/chat/completions", json=ask(max_tokens=5))
    assert r.status_code == 200
    assert r.json()["choices"][0]["finish_reason"] == "length"
    llm.script(Reply("Section nine caps liability at", finish_reason="length"))
    r = await client.post("/v1/chat/completions", json=ask(max_tokens=5, stream=True))
    last = sse_events(r.text)[-2]
    assert isinstance(last, dict) and last["choices"][0]["finish_reason"] == "length"
    events = await chat_events(runtime)
    assert [e.payload["completeness"] for e in events] == ["cut_by_token_cap", "cut_by_token_cap"]


# -- a prompt longer than the model holds ---------------------------------------------


@pytest.fixture
async def small_window(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    """Every expert's model holds 1,024 tokens (256 of them kept for the answer)."""
    experts = write_experts_yaml(tmp_path / "experts.yaml", llm.api_base)
    raw = experts.read_text().replace("timeout_s: 5\n", "timeout_s: 5\n  context_tokens: 1024\n", 1)
    experts.write_text(raw)
    settings = Settings(data_dir=tmp_path / "data", router_dir=gate_dir, experts_file=experts, bootstrap_admin=False)
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


def client_of(runtime: Runtime, key: str) -> httpx.AsyncClient:
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers={"authorization": f"Bearer {key}"}
    )


async def test_a_question_longer_than_the_window_is_a_400_naming_the_limit(
    small_window: Runtime, llm: FakeOpenAI
) -> None:
    key = await make_key(small_window, "ana@example.com")
    async with client_of(small_window, key) as c:
        r = await c.post("/v1/chat/completions", json=ask("Please review this clause. " * 150, model="legal"))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert "1024 tokens" in error["message"] and "characters" in error["message"]
    assert llm.requests == []  # refused here, not by the endpoint
    (event,) = await chat_events(small_window)
    assert (event.outcome, event.status) == ("refused", 400)


async def test_a_streamed_question_longer_than_the_window_is_the_same_400_before_any_stream(
    small_window: Runtime, llm: FakeOpenAI
) -> None:
    key = await make_key(small_window, "ana@example.com")
    async with client_of(small_window, key) as c:
        plain = await c.post("/v1/chat/completions", json=ask("x" * 30_000, model="legal"))
        streamed = await c.post("/v1/chat/completions", json=ask("x" * 30_000, model="legal", stream=True))
        assert streamed.status_code == 400, streamed.text
        assert streamed.headers["content-type"].startswith("application/json")
        assert streamed.json() == plain.json()
        assert streamed.json()["error"]["code"] == "context_length_exceeded"
        assert llm.requests == []
        # Each refusal gave its slot back: none is held, and after more refused streams
        # than the legal expert's capacity (2) a question that fits is still streamed by it.
        assert await small_window.capacity.in_flight() == {}
        for _ in range(2):
            again = await c.post("/v1/chat/completions", json=ask("x" * 30_000, model="legal", stream=True))
            assert again.status_code == 400
        assert await small_window.capacity.in_flight() == {}
        llm.script(Reply("Section nine caps liability."))
        r = await c.post("/v1/chat/completions", json=ask(model="legal", stream=True))
        assert r.status_code == 200, r.text
        events = sse_events(r.text)
        first = events[0]
        assert isinstance(first, dict) and first["expertgate"]["expert"] == "legal"
        assert stream_text(events) == "Section nine caps liability."
    refused = [e for e in await chat_events(small_window) if e.outcome == "refused"]
    assert [(e.status, e.payload["error"]["code"]) for e in refused] == [(400, "context_length_exceeded")] * 4


async def test_old_turns_are_dropped_to_fit_and_the_question_stays(small_window: Runtime, llm: FakeOpenAI) -> None:
    history = []
    for i in range(6):
        history += [
            {"role": "user", "content": f"turn {i}: " + "tell me more about the indemnity clause. " * 12},
            {"role": "assistant", "content": f"answer {i}: " + "it covers third-party claims. " * 12},
        ]
    body = {"model": "legal", "messages": [*history, {"role": "user", "content": "and the cap?"}]}
    key = await make_key(small_window, "ana@example.com")
    async with client_of(small_window, key) as c:
        r = await c.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    sent = llm.requests[-1]["messages"]
    assert sent[-1]["content"] == "and the cap?"
    assert sent[0]["role"] == "system"
    assert 1 < len(sent) < len(body["messages"]) + 1  # some turns went, the newest stayed
    assert not any(m["content"].startswith("turn 0:") for m in sent)
    assert sum(len(m["content"]) for m in sent) <= (1024 - 256) * 3


async def test_an_endpoints_context_error_is_a_400_and_does_not_trip_the_breaker(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "e.yaml", llm.api_base, legal={"breaker": {"failures": 1}}),
        bootstrap_admin=False,
    )
    runtime = build_runtime(settings, encoder=encoder, environ={})
    try:
        key = await make_key(runtime, "ana@example.com")
        async with client_of(runtime, key) as c:
            llm.script(Fault(400, "This model's maximum context length is 4096 tokens. However, you requested 9000"))
            r = await c.post("/v1/chat/completions", json=ask(model="legal"))
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "context_length_exceeded"
            r = await c.post("/v1/chat/completions", json=ask(model="legal"))
            assert r.status_code == 200  # the breaker did not count the refusal
    finally:
        await runtime.close()


# -- one deadline per request ---------------------------------------------------------


@pytest.fixture
async def short_deadline(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    """A 1.5 s deadline, with retries and a fallback chain that would take 5 s a try."""
    experts = write_experts_yaml(tmp_path / "experts.yaml", llm.api_base)
    raw = experts.read_text().replace("retries: 0", "retries: 2", 1)
    experts.write_text(raw)
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=experts,
        bootstrap_admin=False,
        request_deadline_s=1.5,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


async def test_an_upstream_that_hangs_is_answered_within_the_deadline(short_deadline: Runtime, llm: FakeOpenAI) -> None:
    llm.default = Reply("too late", delay_s=8)
    try:
        key = await make_key(short_deadline, "ana@example.com")
        async with client_of(short_deadline, key) as c:
            started = time.perf_counter()
            r = await c.post("/v1/chat/completions", json=ask())
            took = time.perf_counter() - started
            assert r.status_code == 504, r.text
            assert r.json()["error"]["code"] == "deadline_exceeded"
            assert int(r.headers["retry-after"]) >= 1
            # The deadline being kept is the point, so these bounds are wall-clock: the
            # 1.5 s deadline plus room for a loaded machine, still short of the 5 s that
            # one try takes to time out without the deadline (and 8 s to be answered).
            assert took < 1.5 + 2.5
            started = time.perf_counter()
            r = await c.post("/v1/chat/completions", json=ask(stream=True))
            took = time.perf_counter() - started
            events = sse_events(r.text)
            assert isinstance(events[-2], dict) and events[-2]["error"]["code"] == "deadline_exceeded"
            assert took < 1.5 + 2.5
        events = await chat_events(short_deadline)
        assert [(e.outcome, e.status) for e in events] == [("error", 504), ("error", 504)]
        # A deadline is not the endpoint's failure: the breakers stay closed.
        assert all(b.state == "closed" for b in short_deadline.experts.breakers())
    finally:
        llm.default = Reply("This is the fake model's answer.")


async def test_every_503_says_when_to_retry(client: httpx.AsyncClient, llm: FakeOpenAI) -> None:
    llm.script(Fault(502))
    r = await client.post("/v1/chat/completions", json=ask(model="legal"))
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) >= 1


# -- the client that leaves -----------------------------------------------------------


async def test_a_plain_request_whose_client_left_is_recorded_as_aborted(runtime: Runtime, llm: FakeOpenAI) -> None:
    """Called as a server would: the body, then ``http.disconnect`` once the model has the
    request, which it answers only after the test is over. The request ends without the
    answer; its event says 499, not 200."""
    key = await make_key(runtime, "ana@example.com")
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    asked, answer = threading.Event(), threading.Event()
    llm.script(Reply("an answer nobody reads", received=asked, hold=answer))
    body = json.dumps(ask()).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "server": ("t", 80), "client": ("127.0.0.1", 5000),
        "headers": [
            (b"host", b"t"), (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), (b"authorization", f"Bearer {key}".encode()),
        ],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    left: list[float] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.to_thread(asked.wait, 60)  # the client leaves while the model works
        left.append(time.perf_counter())
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        # The model cannot answer before `answer` is set below, so the request cannot
        # have waited for its answer; the bound only turns a hang into a failure.
        await asyncio.wait_for(app(scope, receive, send), 30)
        # Ending at once is the point, so this is wall-clock: generous for a loaded
        # machine, and short of the endpoint's 5 s timeout, which would end it otherwise.
        assert left, "the request never listened for the client leaving"
        assert time.perf_counter() - left[0] < 4
    finally:
        asked.set()
        answer.set()
    assert await count_rows(runtime) == (0, 0)
    (event,) = await chat_events(runtime)
    assert (event.outcome, event.status) == ("aborted", 499)
