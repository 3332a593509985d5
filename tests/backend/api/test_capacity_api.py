"""Expert capacity through the real app (SQLite, in-process slots, the fake OpenAI server
holding answers so requests pile up): a requested expert at capacity is a 503 with
Retry-After, a routed request overflows with reason ``overflow`` in the response and the
audit event, slots come back after plain and streamed answers and a client that goes
away, and replicas each get their own share."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.api.chat import ClosingStream, _sse
from backend.chat.pipeline import Question
from backend.identity.service import IdentityService
from backend.principal import Principal
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import audit_events, client_as, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Reply

LEGAL_QUESTION = "what is the liability cap in the MSA contract?"


def build(tmp_path: Path, gate_dir: Path, encoder: Encoder, api_base: str, **overrides: Any) -> Runtime:
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", api_base, **overrides),
        bootstrap_admin=False,
    )
    return build_runtime(settings, encoder=encoder, environ={})


@pytest.fixture
async def runtime(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    built = build(tmp_path, gate_dir, encoder, llm.api_base, legal={"capacity": 1})
    yield built
    await built.close()


def ask(text: str, model: str = "auto", stream: bool = False) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


async def until(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_requested_expert_at_capacity_is_503_and_routed_requests_overflow(
    runtime: Runtime, llm: FakeOpenAI
) -> None:
    key = await make_key(runtime, "ann@example.com")
    release = threading.Event()
    llm.script(Reply("a held legal answer", hold=release))
    async with client_as(runtime, key) as ann:
        held = asyncio.create_task(ann.post("/v1/chat/completions", json=ask(LEGAL_QUESTION, model="legal")))
        await until(lambda: len(llm.requests) == 1)  # the slow request holds legal's only slot
        assert await runtime.capacity.in_flight() == {"legal": 1}

        refused = await ann.post("/v1/chat/completions", json=ask(LEGAL_QUESTION, model="legal"))
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        err = refused.json()["error"]
        assert err["code"] == "expert_at_capacity" and "'legal' expert is at capacity" in err["message"]
        streamed = await ann.post("/v1/chat/completions", json=ask(LEGAL_QUESTION, model="legal", stream=True))
        assert streamed.status_code == 503  # refused before the stream opens

        rerouted = await ann.post("/v1/chat/completions", json=ask(LEGAL_QUESTION))
        assert rerouted.status_code == 200, rerouted.text
        info = rerouted.json()["expertgate"]
        assert info["expert"] != "legal" and info["reason"] == "overflow"
        assert info["detail"] == "legal at capacity"

        release.set()
        first = await held
        assert first.status_code == 200 and first.json()["expertgate"]["expert"] == "legal"
    assert await runtime.capacity.in_flight() == {}
    assert len(llm.requests) == 2  # the refused requests never reached an LLM
    events = await audit_events(runtime, action="chat.completion")
    assert sorted((e.status, e.reason) for e in events) == [
        (200, "overflow"),
        (200, "requested"),
        (503, "requested"),
        (503, "requested"),
    ]
    after = await client_as(runtime, key).post("/v1/chat/completions", json=ask(LEGAL_QUESTION))
    assert after.json()["expertgate"]["reason"] == "routed"  # the slot came back


async def test_streamed_answers_release_their_slot_when_done_or_abandoned(runtime: Runtime, llm: FakeOpenAI) -> None:
    key = await make_key(runtime, "bo@example.com")
    async with client_as(runtime, key) as bo:
        r = await bo.post("/v1/chat/completions", json=ask(LEGAL_QUESTION, model="legal", stream=True))
        assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    assert await runtime.capacity.in_flight() == {}

    # A client that goes away mid-answer: the consumer closes the stream after one event.
    principal = await _principal(runtime, key)
    stream = await runtime.pipeline.open_stream(Question(principal, "legal", [("user", LEGAL_QUESTION)]))
    assert await runtime.capacity.in_flight() == {"legal": 1}
    events = aiter(stream)
    assert isinstance(events, AsyncGenerator)
    await anext(events)
    await events.aclose()
    assert await runtime.capacity.in_flight() == {}


async def test_a_stream_whose_body_never_starts_gives_its_slot_back(runtime: Runtime, llm: FakeOpenAI) -> None:
    key = await make_key(runtime, "cy@example.com")
    principal = await _principal(runtime, key)
    stream = await runtime.pipeline.open_stream(Question(principal, "legal", [("user", LEGAL_QUESTION)]))
    assert await runtime.capacity.in_flight() == {"legal": 1}
    response = ClosingStream(_sse(stream), stream.aclose, {})

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)  # the client never says anything
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        raise OSError("connection reset by peer")  # the client left before the headers

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "method": "POST", "headers": []}
    with pytest.raises(OSError):
        await response(scope, receive, send)
    assert await runtime.capacity.in_flight() == {}
    assert llm.requests == []  # nothing was generated


async def _principal(runtime: Runtime, key: str) -> Principal:
    async with runtime.db.session() as session:
        return await IdentityService(session).authenticate(key)


@pytest.fixture
def second_llm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


async def test_replicas_each_take_their_share(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, second_llm: FakeOpenAI, encoder: Encoder
) -> None:
    replicas = [{"api_base": llm.api_base, "capacity": 1}, {"api_base": second_llm.api_base, "capacity": 1}]
    built = build(tmp_path, gate_dir, encoder, llm.api_base, code={"capacity": 4, "replicas": replicas})
    try:
        key = await make_key(built, "cy@example.com")
        release = threading.Event()
        llm.script(Reply("held", hold=release))
        second_llm.script(Reply("held", hold=release))
        async with client_as(built, key) as cy:
            calls = [
                cy.post("/v1/chat/completions", json=ask("fix my python KeyError", model="code")) for _ in range(2)
            ]
            first = [asyncio.create_task(c) for c in calls]
            await until(lambda: len(llm.requests) + len(second_llm.requests) == 2)
            third = await cy.post("/v1/chat/completions", json=ask("fix my python KeyError", model="code"))
            assert third.status_code == 503 and third.json()["error"]["code"] == "expert_at_capacity"
            release.set()
            assert [r.status_code for r in await asyncio.gather(*first)] == [200, 200]
        assert (len(llm.requests), len(second_llm.requests)) == (1, 1)  # one on each replica
        assert await built.capacity.in_flight() == {}
    finally:
        await built.close()


async def test_the_slot_is_free_while_the_exchange_is_written(
    runtime: Runtime, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The expert's slot comes back when its answer is generated, not after the write."""
    key = await make_key(runtime, "ann@example.com")
    writes = runtime.pipeline.recorder.writes
    write = writes.run
    in_flight_at_write: list[dict[str, int]] = []

    async def observed_write(unit: Any) -> Any:
        for _ in range(1000):  # up to ~5 s: the release runs beside the write
            held = await runtime.capacity.in_flight()
            if not held:
                break
            await asyncio.sleep(0.005)
        in_flight_at_write.append(held)
        return await write(unit)

    monkeypatch.setattr(writes, "run", observed_write)
    r = await client_as(runtime, key).post("/v1/chat/completions", json=ask(LEGAL_QUESTION, model="legal"))
    assert r.status_code == 200
    assert in_flight_at_write == [{}]
