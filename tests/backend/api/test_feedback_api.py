"""Feedback and relabels reach the training examples; router admin over HTTP."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from backend.db.models import Feedback, TrainingExample
from backend.runtime import Runtime
from tests.conftest import TEST_GATE, audit_events, make_key
from tests.fakes.openai_server import FakeOpenAI


async def ask(client: httpx.AsyncClient, text: str, model: str = "auto") -> str:
    r = await client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}]}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["expertgate"]["request_id"])


async def examples(runtime: Runtime) -> list[tuple[str, str, str]]:
    async with runtime.db.session() as s:
        rows = (await s.scalars(select(TrainingExample).order_by(TrainingExample.id))).all()
    return [(r.text, r.domain, r.source) for r in rows]


async def test_thumbs_up_is_stored_without_a_training_example(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    request_id = await ask(client, "how do I squash commits in git?")
    r = await client.post("/api/v1/feedback", json={"request_id": request_id, "rating": "up"})
    assert r.status_code == 201 and r.json()["id"] > 0
    assert await examples(runtime) == []


async def test_should_have_gone_to_becomes_a_training_example_once(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    request_id = await ask(client, "who signs supplier contracts over 50k?", model="support")
    body = {
        "request_id": request_id,
        "rating": "down",
        "comment": "this is a legal question",
        "expected_expert": "legal",
    }
    first = await client.post("/api/v1/feedback", json=body)
    again = await client.post("/api/v1/feedback", json=body)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert await examples(runtime) == [("who signs supplier contracts over 50k?", "legal", "feedback")]
    async with runtime.db.session() as s:
        fb = (await s.scalars(select(Feedback))).one()
    assert (fb.rating, fb.expected_expert, fb.routed_expert, fb.resolved) == ("down", "legal", "support", True)
    audited = await audit_events(runtime, action="feedback.submitted")
    assert [(e.request_id, e.expert, e.payload["expected_expert"]) for e in audited] == [
        (request_id, "support", "legal")
    ] * 2


async def test_feedback_on_someone_elses_request_is_404(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    request_id = await ask(client, "reset my password please")
    other = await make_key(runtime, "mallory@example.com")
    r = await client.post(
        "/api/v1/feedback",
        headers={"authorization": f"Bearer {other}"},
        json={"request_id": request_id, "rating": "down"},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "request_not_found"


async def test_bad_feedback_is_400_naming_the_field(client: httpx.AsyncClient, llm: FakeOpenAI) -> None:
    request_id = await ask(client, "hello")
    r = await client.post("/api/v1/feedback", json={"request_id": request_id, "rating": "meh"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "rating"
    r = await client.post(
        "/api/v1/feedback", json={"request_id": request_id, "rating": "down", "expected_expert": "finance"}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "expected_expert"


async def test_admin_relabels_from_the_queue_and_users_cannot(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    request_id = await ask(client, "the scheduler pod keeps restarting after deploy")
    await client.post("/api/v1/feedback", json={"request_id": request_id, "rating": "down", "comment": "wrong expert"})
    r = await client.post("/api/v1/admin/router/relabel", json={"request_id": request_id, "domain": "code"})
    assert r.status_code == 403
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    headers = {"authorization": f"Bearer {admin}"}
    queue = (await client.get("/api/v1/admin/router/feedback", headers=headers)).json()
    assert [q["request_id"] for q in queue] == [request_id]
    assert queue[0]["question"] == "the scheduler pod keeps restarting after deploy"
    r = await client.post(
        "/api/v1/admin/router/relabel", headers=headers, json={"request_id": request_id, "domain": "code"}
    )
    assert r.status_code == 200 and r.json()["domain"] == "code"
    assert await examples(runtime) == [("the scheduler pod keeps restarting after deploy", "code", "admin")]
    assert (await client.get("/api/v1/admin/router/feedback", headers=headers)).json() == []


async def test_router_status_and_promote_errors(client: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    headers = {"authorization": f"Bearer {admin}"}
    status = (await client.get("/api/v1/admin/router", headers=headers)).json()
    assert status["serving"] == status["active"] == TEST_GATE
    assert [v["version"] for v in status["versions"] if v["active"]] == [TEST_GATE]
    r = await client.post("/api/v1/admin/router/promote", headers=headers, json={"version": "gate-nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "router_version_not_found"
    r = await client.post("/api/v1/admin/router/rollback", headers=headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "nothing_to_roll_back"
    assert (await client.get("/api/v1/admin/router")).status_code == 403


async def test_feedback_on_a_deleted_conversation_leaves_the_queue_working(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    gone = await ask(client, "why was my invoice charged twice")
    kept = await ask(client, "the export button does nothing")
    for request_id in (gone, kept):
        r = await client.post("/api/v1/feedback", json={"request_id": request_id, "rating": "down"})
        assert r.status_code == 201
    conversations = (await client.get("/api/v1/conversations")).json()["data"]
    conv = next(c["id"] for c in conversations if "invoice" in c["title"])
    assert (await client.delete(f"/api/v1/conversations/{conv}")).status_code == 204
    admin = await make_key(runtime, "root@example.com", roles={"admin"})
    r = await client.get("/api/v1/admin/router/feedback", headers={"authorization": f"Bearer {admin}"})
    assert r.status_code == 200, r.text
    assert [q["request_id"] for q in r.json()] == [kept]
