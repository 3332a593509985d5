"""Human review of high-risk answers (issue 22 item 4) through the real app: the fake
model answers about an uploaded MSA, the legal expert's ``review`` policy holds or queues
the answer, and reviewers decide through /api/v1/reviews. A held draft never reaches
its asker before approval: not in the plain body, not in the stream, not in the stored
conversation."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from experts.errors import RegistryError
from experts.registry import ExpertRegistry
from router.encoder import Encoder
from tests.backend.api.test_chat_api import sse_events
from tests.backend.api.test_grounding_api import ASK, MSA, RIGHT, WRONG, app_with
from tests.conftest import audit_events, client_as, make_key
from tests.fakes.openai_server import FakeOpenAI, Reply

HELD = {"review": {"when": "always", "delivery": "hold", "group": "legal-reviewers"}}
PLACEHOLDER = "This answer is being reviewed by a person before you see it"


@contextlib.asynccontextmanager
async def setup(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder, **legal: Any
) -> AsyncIterator[dict[str, Any]]:
    """The app with ``legal`` settings, the MSA uploaded, and clients: ``asker`` (a plain
    user), ``reviewer`` (in legal-reviewers), ``outsider`` (a reviewer of no group)."""
    runtime = await app_with(tmp_path, gate_dir, llm, encoder, **legal)
    try:
        admin = await make_key(runtime, "root@example.com", roles={"admin"})
        asker = await make_key(runtime, "ana@example.com")
        reviewer = await make_key(runtime, "rita@example.com", roles={"reviewer"}, groups={"legal-reviewers"})
        outsider = await make_key(runtime, "otto@example.com", roles={"reviewer"}, groups={"support-reviewers"})
        async with (
            client_as(runtime, admin) as a,
            client_as(runtime, asker) as u,
            client_as(runtime, reviewer) as r,
            client_as(runtime, outsider) as o,
        ):
            files = [("files", ("msa.md", MSA))]
            up = await a.post("/api/v1/documents", data={"domain": "legal", "groups": ""}, files=files)
            assert up.status_code == 202, up.text
            yield {"runtime": runtime, "admin": a, "asker": u, "reviewer": r, "outsider": o}
    finally:
        await runtime.close()


async def stored_answer(client: httpx.AsyncClient, conversation_id: str) -> tuple[str, dict[str, Any]]:
    r = await client.get(f"/api/v1/conversations/{conversation_id}")
    assert r.status_code == 200, r.text
    message = next(m for m in r.json()["messages"] if m["role"] == "assistant")
    return message["content"], message["route"]


async def test_a_held_answer_reaches_nobody_but_reviewers_until_approved(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    async with setup(tmp_path, gate_dir, llm, encoder, **HELD) as s:
        asker, reviewer = s["asker"], s["reviewer"]
        llm.script(Reply(WRONG))
        r = await asker.post("/v1/chat/completions", json=ASK)
        assert r.status_code == 200, r.text
        assert WRONG not in r.text and "24 months" not in r.text
        body = r.json()
        review = body["expertgate"]["review"]
        assert review["status"] == "pending"
        assert body["choices"][0]["message"]["content"] == f"{PLACEHOLDER} (review {review['id']})."
        conversation = body["expertgate"]["conversation_id"]

        page = await asker.get(f"/api/v1/conversations/{conversation}")
        assert WRONG not in page.text and "24 months" not in page.text
        content, route = await stored_answer(asker, conversation)
        assert content.startswith(PLACEHOLDER) and route["review"] == {"id": review["id"], "status": "pending"}
        outcome = await asker.get(f"/api/v1/reviews/{review['id']}")
        assert outcome.status_code == 200 and WRONG not in outcome.text
        assert outcome.json()["status"] == "pending" and "draft" not in outcome.json()

        queue = await reviewer.get("/api/v1/reviews?status=pending")
        (item,) = queue.json()["data"]
        assert item["id"] == review["id"] and item["draft"] == WRONG and item["trigger"] == "always"
        assert item["question"] == ASK["messages"][0]["content"] and item["citations"]
        assert item["grounding"]["unsupported"][0]["reason"] == "number_mismatch"

        decided = await reviewer.post(f"/api/v1/reviews/{review['id']}", json={"decision": "approve", "reason": "ok"})
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "approved" and decided.json()["reviewer_email"] == "rita@example.com"
        content, route = await stored_answer(asker, conversation)
        assert content == WRONG and route["review"]["status"] == "approved"
        assert route["grounding"]["unsupported"][0]["text"] in WRONG  # the draft's marks come back with it
        outcome = (await asker.get(f"/api/v1/reviews/{review['id']}")).json()
        assert outcome["status"] == "approved" and outcome["final_text"] == WRONG

        again = await reviewer.post(f"/api/v1/reviews/{review['id']}", json={"decision": "reject", "reason": "late"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "review_decided"
        assert (await reviewer.get("/api/v1/reviews?status=pending")).json()["data"] == []

        (event,) = await audit_events(s["runtime"], action="review.approved")
        assert event.user_email == "rita@example.com" and event.payload["review_id"] == review["id"]
        (chat,) = await audit_events(s["runtime"], action="chat.completion", user_email="ana@example.com")
        assert chat.payload["review"]["id"] == review["id"] and chat.answer == WRONG


async def test_a_held_stream_sends_the_placeholder_and_never_the_draft(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    async with setup(tmp_path, gate_dir, llm, encoder, **HELD) as s:
        llm.script(Reply(WRONG))
        r = await s["asker"].post("/v1/chat/completions", json={**ASK, "stream": True})
        assert r.status_code == 200
        assert WRONG not in r.text and "24 months" not in r.text
        events = [e for e in sse_events(r.text) if isinstance(e, dict)]
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
        review = events[-1]["expertgate"]["review"]
        assert text == f"{PLACEHOLDER} (review {review['id']})." and review["status"] == "pending"
        conversation = events[-1]["expertgate"]["conversation_id"]
        page = await s["asker"].get(f"/api/v1/conversations/{conversation}")
        assert WRONG not in page.text
        (item,) = (await s["reviewer"].get("/api/v1/reviews")).json()["data"]
        assert item["draft"] == WRONG


async def test_edit_replaces_the_draft_and_reject_says_why(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    async with setup(tmp_path, gate_dir, llm, encoder, **HELD) as s:
        asker, reviewer = s["asker"], s["reviewer"]
        ids = []
        for _ in range(2):
            llm.script(Reply(WRONG))
            body = (await asker.post("/v1/chat/completions", json=ASK)).json()
            ids.append((body["expertgate"]["review"]["id"], body["expertgate"]["conversation_id"]))
        (edit_id, edit_conv), (reject_id, reject_conv) = ids

        # Oldest first, a page at a time; a review queued between two pages comes last.
        first = (await reviewer.get("/api/v1/reviews", params={"limit": 1})).json()
        assert [r["id"] for r in first["data"]] == [edit_id] and first["next_cursor"]
        llm.script(Reply(WRONG))
        later = (await asker.post("/v1/chat/completions", json=ASK)).json()["expertgate"]["review"]["id"]
        rest = await reviewer.get("/api/v1/reviews", params={"limit": 5, "cursor": first["next_cursor"]})
        assert [r["id"] for r in rest.json()["data"]] == [reject_id, later] and rest.json()["next_cursor"] is None
        bad = await reviewer.get("/api/v1/reviews", params={"cursor": first["next_cursor"][:-3]})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"

        missing = await reviewer.post(f"/api/v1/reviews/{edit_id}", json={"decision": "edit", "reason": "number"})
        assert missing.status_code == 400
        r = await reviewer.post(
            f"/api/v1/reviews/{edit_id}", json={"decision": "edit", "text": RIGHT, "reason": "wrong number"}
        )
        assert r.status_code == 200 and r.json()["status"] == "edited"
        content, route = await stored_answer(asker, edit_conv)
        assert content == RIGHT and route["review"]["status"] == "edited"
        page = await asker.get(f"/api/v1/conversations/{edit_conv}")
        assert WRONG not in page.text and "24 months" not in page.text

        r = await reviewer.post(f"/api/v1/reviews/{reject_id}", json={"decision": "reject", "reason": "not in the MSA"})
        assert r.status_code == 200
        content, _ = await stored_answer(asker, reject_conv)
        assert content == "A reviewer rejected this answer: not in the MSA"
        assert (await asker.get(f"/api/v1/reviews/{reject_id}")).json()["status"] == "rejected"

        (edited,) = await audit_events(s["runtime"], action="review.edited")
        (rejected,) = await audit_events(s["runtime"], action="review.rejected")
        assert edited.user_email == rejected.user_email == "rita@example.com"
        assert rejected.payload["reason"] == "not in the MSA"
        unknown = await reviewer.post("/api/v1/reviews/nope", json={"decision": "approve", "reason": "x"})
        assert unknown.status_code == 404


async def test_reviewers_see_and_decide_only_their_experts(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    async with setup(tmp_path, gate_dir, llm, encoder, **HELD) as s:
        llm.script(Reply(WRONG))
        review = (await s["asker"].post("/v1/chat/completions", json=ASK)).json()["expertgate"]["review"]
        outsider = s["outsider"]
        assert (await outsider.get("/api/v1/reviews")).json()["data"] == []
        r = await outsider.post(f"/api/v1/reviews/{review['id']}", json={"decision": "approve", "reason": "ok"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "review_not_assigned"
        r = await outsider.get(f"/api/v1/reviews/{review['id']}")
        assert r.status_code == 403 and WRONG not in r.text
        # A plain user may read only the outcome of their own, and use no queue.
        assert (await s["asker"].get("/api/v1/reviews")).status_code == 403
        r = await s["asker"].post(f"/api/v1/reviews/{review['id']}", json={"decision": "approve", "reason": "mine"})
        assert r.status_code == 403
        # Admins review every expert.
        (item,) = (await s["admin"].get("/api/v1/reviews")).json()["data"]
        assert item["id"] == review["id"]
        metrics = (await s["admin"].get("/metrics")).text
        assert 'expertgate_reviews_pending{expert="legal"} 1.0' in metrics
        assert 'expertgate_review_pending_age_seconds{quantile="0.95"}' in metrics
        assert (await audit_events(s["runtime"], action="review.approved")) == []


async def test_on_fail_holds_only_answers_below_min_score(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    async with setup(tmp_path, gate_dir, llm, encoder, review={"when": "on_fail"}) as s:
        asker = s["asker"]
        llm.script(Reply(RIGHT))
        r = await asker.post("/v1/chat/completions", json=ASK)
        assert r.json()["choices"][0]["message"]["content"] == RIGHT and r.json()["expertgate"]["review"] is None
        llm.script(Reply(RIGHT))  # buffered while the check runs, then released whole
        r = await asker.post("/v1/chat/completions", json={**ASK, "stream": True})
        events = [e for e in sse_events(r.text) if isinstance(e, dict)]
        assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == RIGHT
        assert events[-1]["expertgate"]["review"] is None
        assert (await s["reviewer"].get("/api/v1/reviews")).json()["data"] == []

        llm.script(Reply(WRONG))
        r = await asker.post("/v1/chat/completions", json={**ASK, "stream": True})
        assert WRONG not in r.text
        llm.script(Reply(WRONG))
        r = await asker.post("/v1/chat/completions", json=ASK)
        assert WRONG not in r.text and r.json()["expertgate"]["review"]["status"] == "pending"
        queue = (await s["reviewer"].get("/api/v1/reviews")).json()["data"]
        assert [i["trigger"] for i in queue] == ["on_fail", "on_fail"]
        assert all(i["grounding"]["score"] < 0.5 for i in queue)


async def test_deliver_with_notice_delivers_and_queues(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    async with setup(
        tmp_path, gate_dir, llm, encoder, review={"when": "always", "delivery": "deliver_with_notice"}
    ) as s:
        llm.script(Reply(WRONG))
        body = (await s["asker"].post("/v1/chat/completions", json=ASK)).json()
        text = body["choices"][0]["message"]["content"]
        review = body["expertgate"]["review"]
        assert text.startswith(WRONG) and f"a person will review this answer (review {review['id']})" in text
        (mark,) = body["expertgate"]["grounding"]["unsupported"]
        assert text[mark["start"] : mark["end"]] == mark["text"]
        (item,) = (await s["reviewer"].get("/api/v1/reviews")).json()["data"]
        assert item["delivery"] == "deliver_with_notice" and item["draft"] == WRONG


@pytest.mark.parametrize(
    ("review", "field"),
    [
        ({"when": "sample"}, "sample_rate"),
        ({"when": "always", "sample_rate": 0.5}, "sample_rate"),
        ({"when": "sometimes"}, "when"),
        ({"delivery": "email"}, "delivery"),
        ({"when": "always", "reviewers": "x"}, "reviewers"),
    ],
)
def test_review_settings_are_validated(review: dict[str, Any], field: str) -> None:
    raw = {
        "experts": {
            "general": {
                "description": "the generalist answers anything",
                "llm": {"model": "openai/x"},
                "system_prompt": "be helpful",
                "review": review,
            }
        }
    }
    with pytest.raises(RegistryError, match=rf"experts\.general\.review.*{field}"):
        ExpertRegistry.from_mapping(raw)


async def test_a_decision_is_posted_to_the_review_webhook(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    """Systems that asked through the API hear of the outcome: one JSON POST per decision."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from backend.runtime import build_runtime
    from backend.settings import Settings
    from tests.conftest import write_experts_yaml
    from tests.fakes.http_server import LoopbackServer

    heard: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        heard.append(await request.json())
        return Response(status_code=204)

    server = LoopbackServer.start(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), "review webhook")
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base, legal=HELD),
        bootstrap_admin=False,
        review_webhook_url=f"http://127.0.0.1:{server.port}/hook",
    )
    runtime = build_runtime(settings, encoder=encoder, environ={})
    try:
        asker = await make_key(runtime, "ana@example.com")
        reviewer = await make_key(runtime, "rita@example.com", roles={"reviewer"}, groups={"legal-reviewers"})
        async with client_as(runtime, asker) as u, client_as(runtime, reviewer) as r:
            llm.script(Reply(WRONG))
            body = (await u.post("/v1/chat/completions", json=ASK)).json()
            review = body["expertgate"]["review"]["id"]
            assert heard == []  # nothing is said before a decision
            fixed = RIGHT
            decided = await r.post(
                f"/api/v1/reviews/{review}", json={"decision": "edit", "text": fixed, "reason": "cap"}
            )
            assert decided.status_code == 200, decided.text
        (said,) = heard
        assert said["review_id"] == review and said["status"] == "edited" and said["final_text"] == fixed
        assert said["conversation_id"] == body["expertgate"]["conversation_id"] and said["reason"] == "cap"
    finally:
        await runtime.close()
        server.stop()


async def test_the_dashboard_reads_the_queue_depth_and_age(
    tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    async with setup(tmp_path, gate_dir, llm, encoder, **HELD) as s:
        llm.script(Reply(WRONG))
        assert (await s["asker"].post("/v1/chat/completions", json=ASK)).status_code == 200
        stats = await s["admin"].get("/api/v1/reviews/stats")
        assert stats.status_code == 200, stats.text
        body = stats.json()
        assert body["pending"] == 1 and body["by_expert"] == {"legal": 1}
        assert 0 <= body["age_p50_s"] <= body["age_p95_s"] <= body["age_max_s"]
        assert (await s["reviewer"].get("/api/v1/reviews/stats")).status_code == 200
        assert (await s["asker"].get("/api/v1/reviews/stats")).status_code == 403
