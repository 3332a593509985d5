"""/api/v1/conversations through the real app: history written by real /v1 chats."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from backend.app import create_app
from backend.db.models import Message
from backend.runtime import Runtime
from tests.conftest import make_key
from tests.fakes.openai_server import FakeOpenAI, Fault, Reply


async def chat(client: httpx.AsyncClient, text: str, conversation_id: str | None = None, model: str = "auto") -> str:
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if conversation_id:
        body["conversation_id"] = conversation_id
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    conv_id: str = r.json()["expertgate"]["conversation_id"]
    return conv_id


async def other_client(runtime: Runtime, email: str) -> httpx.AsyncClient:
    key = await make_key(runtime, email)
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"authorization": f"Bearer {key}"},
    )


async def test_list_is_newest_first_and_detail_has_messages_with_routes(
    client: httpx.AsyncClient, llm: FakeOpenAI
) -> None:
    llm.script(Reply("Use git rebase -i."), Reply("Twelve months of fees."), Reply("Squash them."))
    first = await chat(client, "how do I squash the last three git commits\nmore detail")
    second = await chat(client, "what is the liability cap in our MSA")
    # Continuing the first makes it the most recently updated.
    assert await chat(client, "and then force-push?", first) == first

    r = await client.get("/api/v1/conversations")
    assert r.status_code == 200, r.text
    page = r.json()
    assert [c["id"] for c in page["data"]] == [first, second]
    assert page["next_cursor"] is None
    assert page["data"][0]["title"] == "how do I squash the last three git commits"
    assert page["data"][0]["channel"] == "api"

    r = await client.get(f"/api/v1/conversations/{first}")
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["id"] == first
    roles = [m["role"] for m in detail["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    answer = detail["messages"][1]
    assert answer["content"] == "Use git rebase -i."
    assert answer["expert"] == "code"
    assert answer["route"]["expert"] == "code"
    assert answer["route"]["reason"] == "routed"
    assert 0 < answer["route"]["confidence"] <= 1
    assert set(answer["route"]["probabilities"]) == {"code", "legal", "support", "general"}
    assert answer["route"]["citations"] == []
    # Both messages of one exchange carry its request id (the key feedback refers to).
    assert detail["messages"][0]["request_id"] == answer["request_id"]
    assert detail["messages"][0]["route"] is None


async def test_fallback_answer_reads_back_with_reason_fallback(client: httpx.AsyncClient, llm: FakeOpenAI) -> None:
    llm.script(Fault(503), Reply("general answers"))
    conv = await chat(client, "kubernetes pod stuck in CrashLoopBackOff")
    r = await client.get(f"/api/v1/conversations/{conv}")
    answer = r.json()["messages"][1]
    assert answer["expert"] == "general"
    assert answer["route"]["routed_to"] == "code"
    assert answer["route"]["reason"] == "fallback"
    assert answer["route"]["fallbacks"][0]["expert"] == "code"


async def test_cursor_pages_through_every_conversation_once(client: httpx.AsyncClient) -> None:
    made = [await chat(client, f"question number {i}", model="general") for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/api/v1/conversations", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["data"]) <= 2
        seen += [c["id"] for c in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(made))


async def test_bad_cursor_and_limit_are_400(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/conversations", params={"cursor": "not-a-cursor!"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "cursor" and r.json()["error"]["code"] == "invalid_cursor"
    r = await client.get("/api/v1/conversations", params={"limit": 0})
    assert r.status_code == 400


async def test_someone_elses_conversation_is_404_for_read_and_delete(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    conv = await chat(client, "hello there", model="general")
    async with await other_client(runtime, "bob@example.com") as bob:
        assert (await bob.get("/api/v1/conversations")).json()["data"] == []
        r = await bob.get(f"/api/v1/conversations/{conv}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "conversation_not_found"
        assert (await bob.delete(f"/api/v1/conversations/{conv}")).status_code == 404
    # Still there for its owner.
    assert (await client.get(f"/api/v1/conversations/{conv}")).status_code == 200


async def test_delete_removes_the_conversation_and_its_messages(client: httpx.AsyncClient, runtime: Runtime) -> None:
    keep = await chat(client, "keep me", model="general")
    gone = await chat(client, "delete me", model="general")
    r = await client.delete(f"/api/v1/conversations/{gone}")
    assert r.status_code == 204
    assert (await client.get(f"/api/v1/conversations/{gone}")).status_code == 404
    assert [c["id"] for c in (await client.get("/api/v1/conversations")).json()["data"]] == [keep]
    async with runtime.db.session() as s:
        left = await s.scalar(select(func.count()).select_from(Message).where(Message.conversation_id == gone))
    assert left == 0
    # Continuing a deleted conversation is a 404 too.
    r = await client.post(
        "/v1/chat/completions",
        json={
            "model": "general",
            "conversation_id": gone,
            "messages": [{"role": "user", "content": "still there?"}],
        },
    )
    assert r.status_code == 404
    assert (await client.delete(f"/api/v1/conversations/{gone}")).status_code == 404


async def test_history_needs_a_key(runtime: Runtime) -> None:
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as anon:
        assert (await anon.get("/api/v1/conversations")).status_code == 401
