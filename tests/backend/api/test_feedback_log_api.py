"""GET /api/v1/admin/feedback: every rating and comment, for admins and auditors; and the
router status naming what a rollback would re-activate."""

from __future__ import annotations

import httpx

from backend.runtime import Runtime
from tests.conftest import TEST_GATE, auth, make_key
from tests.fakes.openai_server import FakeOpenAI


async def ask(client: httpx.AsyncClient, text: str, model: str = "auto") -> str:
    r = await client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}]}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["expertgate"]["request_id"])


async def rate(client: httpx.AsyncClient, request_id: str, rating: str, **extra: str) -> None:
    r = await client.post("/api/v1/feedback", json={"request_id": request_id, "rating": rating, **extra})
    assert r.status_code == 201, r.text


async def test_every_rating_and_comment_newest_first(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    liked = await ask(client, "how do I squash commits in git?", model="code")
    wrong = await ask(client, "who signs supplier contracts over 50k?", model="support")
    await rate(client, liked, "up", comment="clear steps, thanks")
    await rate(client, wrong, "down", comment="this is a legal question", expected_expert="legal")
    auditor = await make_key(runtime, "audrey@example.com", roles={"auditor"})

    r = await client.get("/api/v1/admin/feedback", headers=auth(auditor))
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_cursor"] is None
    rows = [
        (e["request_id"], e["rating"], e["comment"], e["routed_expert"], e["expected_expert"], e["resolved"])
        for e in page["data"]
    ]
    # Thumbs-up and resolved feedback are listed too (the relabel queue shows neither).
    assert rows == [
        (wrong, "down", "this is a legal question", "support", "legal", True),
        (liked, "up", "clear steps, thanks", "code", None, False),
    ]
    assert {e["user_email"] for e in page["data"]} == {"alice@example.com"}
    assert page["data"][0]["question"] == "who signs supplier contracts over 50k?"
    assert page["data"][0]["created_at"] >= page["data"][1]["created_at"]


async def test_plain_users_may_not_read_it(client: httpx.AsyncClient, llm: FakeOpenAI) -> None:
    r = await client.get("/api/v1/admin/feedback")
    assert r.status_code == 403 and r.json()["error"]["code"] == "auditor_required"


async def test_filters_and_pages(client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime) -> None:
    ids = [await ask(client, f"question number {n} about the beacon app", model="support") for n in range(5)]
    await rate(client, ids[0], "up")
    await rate(client, ids[1], "down", comment="outdated")
    await rate(client, ids[2], "down")
    await rate(client, ids[3], "up", comment="")
    await rate(client, ids[4], "down", comment="missing the second step")
    admin = auth(await make_key(runtime, "root@example.com", roles={"admin"}))

    async def listed(**params: object) -> dict[str, object]:
        r = await client.get("/api/v1/admin/feedback", headers=admin, params=params)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def request_ids(page: dict[str, object]) -> list[str]:
        return [e["request_id"] for e in page["data"]]  # type: ignore[attr-defined]

    assert request_ids(await listed(rating="down")) == [ids[4], ids[2], ids[1]]
    assert request_ids(await listed(with_comment="true")) == [ids[4], ids[1]]
    assert request_ids(await listed(expert="legal")) == []
    first = await listed(limit=2)
    assert request_ids(first) == [ids[4], ids[3]] and isinstance(first["next_cursor"], str)
    second = await listed(limit=2, cursor=first["next_cursor"])
    third = await listed(limit=2, cursor=second["next_cursor"])
    assert request_ids(second) == [ids[2], ids[1]] and request_ids(third) == [ids[0]]
    assert third["next_cursor"] is None
    # Filters go on across pages: the cursor only says where the last page stopped.
    downs = await listed(rating="down", limit=1)
    assert request_ids(await listed(rating="down", limit=2, cursor=downs["next_cursor"])) == [ids[2], ids[1]]
    r = await client.get("/api/v1/admin/feedback", headers=admin, params={"limit": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "query.limit"
    # The old id parameter is gone; a cursor of another list is refused, not misread.
    flags = await client.get("/api/v1/safety/flags", headers=admin)
    assert flags.status_code == 200
    r = await client.get("/api/v1/admin/feedback", headers=admin, params={"cursor": "5"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


async def test_feedback_outlives_its_deleted_conversation(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    request_id = await ask(client, "why was my invoice charged twice")
    await rate(client, request_id, "down", comment="did not answer")
    conv = (await client.get("/api/v1/conversations")).json()["data"][0]["id"]
    assert (await client.delete(f"/api/v1/conversations/{conv}")).status_code == 204
    admin = auth(await make_key(runtime, "root@example.com", roles={"admin"}))
    [entry] = (await client.get("/api/v1/admin/feedback", headers=admin)).json()["data"]
    assert (entry["request_id"], entry["comment"], entry["question"]) == (request_id, "did not answer", None)


async def test_router_status_names_the_rollback_target(client: httpx.AsyncClient, runtime: Runtime) -> None:
    gate = TEST_GATE
    admin = auth(await make_key(runtime, "root@example.com", roles={"admin"}))
    assert (await client.get("/api/v1/admin/router", headers=admin)).json()["rollback_to"] is None
    for _ in range(2):
        r = await client.post("/api/v1/admin/router/promote", headers=admin, json={"version": gate})
        assert r.status_code == 200, r.text
    assert r.json()["rollback_to"] == gate
    r = await client.post("/api/v1/admin/router/rollback", headers=admin)
    assert r.status_code == 200 and r.json()["rollback_to"] is None
