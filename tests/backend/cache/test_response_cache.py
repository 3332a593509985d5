"""The response cache through the real app (issue 24): the real router and encoder,
litellm against the fake OpenAI server. A second identical question is answered from the
cache (same text, the LLM not called, the audit event naming the request it came from);
a caller who may not read a cited document gets a miss; a publish of the expert's index
ends the cached answers; ``Cache-Control: no-cache`` skips the lookup; ``stream: true``
replays the cached text as deltas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.chat.types import Question, StreamOpened
from backend.identity.service import IdentityService, principal_of
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.backend.api.test_chat_api import sse_events
from tests.conftest import audit_events, client_as, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Reply

MSA = b"""# Master Services Agreement: Key Terms

## Liability cap

Each party's total liability under the MSA is capped at the fees paid in the 12 months
before the claim. The cap does not apply to breaches of confidentiality.
"""
TERMINATION = b"""# Termination

Either party may terminate for convenience with 90 days written notice.
"""
QUESTION = "What is the liability cap in our MSA?"
ASK = {"model": "legal", "messages": [{"role": "user", "content": QUESTION}]}
RIGHT = "Liability is capped at the fees paid in the 12 months before the claim [1]."
# The shipped experts.yaml has the cache off; these tests turn it on for every expert
# (the shipped thresholds and TTL stay).
CACHE_ON = {name: {"cache": {"enabled": True}} for name in ("code", "legal", "support", "general")}


@pytest.fixture
async def app(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base, **CACHE_ON),
        bootstrap_admin=False,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


async def upload(runtime: Runtime, name: str, body: bytes, groups: str) -> None:
    key = await make_key(runtime, "root@example.com", roles={"admin"})
    async with client_as(runtime, key) as admin:
        r = await admin.post(
            "/api/v1/documents", data={"domain": "legal", "groups": groups}, files=[("files", (name, body))]
        )
        assert r.status_code == 202, r.text


async def ask(client: httpx.AsyncClient, **extra: object) -> dict:  # type: ignore[type-arg]
    r = await client.post("/v1/chat/completions", json={**ASK, **extra.pop("body", {})}, **extra)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_second_identical_question_is_answered_from_the_cache(app: Runtime, llm: FakeOpenAI) -> None:
    await upload(app, "msa.md", MSA, "")
    key = await make_key(app, "ana@example.com")
    llm.script(Reply(RIGHT))
    async with client_as(app, key) as c:
        first = await ask(c)
        calls = len(llm.requests)
        second = await ask(c, body={"messages": [{"role": "user", "content": "what is the liability cap in our MSA"}]})
        metrics = (await c.get("/metrics")).text
    assert len(llm.requests) == calls  # the model was not asked again
    assert first["expertgate"]["cache"]["status"] == "miss"
    assert second["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"] == RIGHT
    cache = second["expertgate"]["cache"]
    assert cache["status"] == "hit" and cache["match"] == "exact"
    assert cache["source_request_id"] == first["expertgate"]["request_id"]
    assert cache["tokens_saved"] == first["usage"]["total_tokens"] > 0
    assert second["usage"]["total_tokens"] == 0  # nothing was generated for it
    assert [p["source"] for p in second["expertgate"]["citations"]] == [
        p["source"] for p in first["expertgate"]["citations"]
    ]
    assert second["expertgate"]["grounding"]["score"] == 1.0
    # Audited and recorded like any answer, saying where it came from.
    events = await audit_events(app, action="chat.completion")
    assert [e.request_id for e in events] == [first["expertgate"]["request_id"], second["expertgate"]["request_id"]]
    assert events[1].payload["cache"]["status"] == "hit"
    assert events[1].payload["cache"]["source_request_id"] == first["expertgate"]["request_id"]
    assert events[0].payload["cache"]["status"] == "miss"
    async with client_as(app, key) as c:
        stored = (await c.get(f"/api/v1/conversations/{second['expertgate']['conversation_id']}")).json()
    assert [m["content"] for m in stored["messages"]] == ["what is the liability cap in our MSA", RIGHT]
    assert 'expertgate_cache_lookups_total{expert="legal",result="hit"} 1.0' in metrics
    assert 'expertgate_cache_lookups_total{expert="legal",result="miss"} 1.0' in metrics
    assert f'expertgate_cache_tokens_saved_total{{expert="legal"}} {float(cache["tokens_saved"])}' in metrics


async def test_a_caller_who_may_not_read_a_cited_document_gets_a_miss(app: Runtime, llm: FakeOpenAI) -> None:
    await upload(app, "msa.md", MSA, "legal-team")
    member = await make_key(app, "lea@example.com", groups={"legal-team"})
    outsider = await make_key(app, "sam@example.com", groups={"sales"})
    other_member = await make_key(app, "max@example.com", groups={"legal-team"})
    llm.script(Reply(RIGHT), Reply("I have no document about that."))
    async with client_as(app, member) as c:
        first = await ask(c)
    assert first["expertgate"]["citations"], "the member's answer cites the restricted MSA"
    async with client_as(app, outsider) as c:
        theirs = await ask(c)
    assert theirs["expertgate"]["cache"]["status"] == "miss"
    assert theirs["expertgate"]["cache"]["rejected"] == {"forbidden": 1}
    assert theirs["choices"][0]["message"]["content"] == "I have no document about that."
    assert len(llm.requests) == 2
    # Another member gets the answer that cites the document, not the outsider's.
    async with client_as(app, other_member) as c:
        again = await ask(c)
    assert again["expertgate"]["cache"]["status"] == "hit"
    assert again["expertgate"]["cache"]["source_request_id"] == first["expertgate"]["request_id"]
    assert len(llm.requests) == 2


async def test_publishing_the_index_ends_the_cached_answers(app: Runtime, llm: FakeOpenAI) -> None:
    await upload(app, "msa.md", MSA, "")
    key = await make_key(app, "ana@example.com")
    llm.script(Reply(RIGHT), Reply(RIGHT))
    async with client_as(app, key) as c:
        await ask(c)
        assert (await ask(c))["expertgate"]["cache"]["status"] == "hit"
        await upload(app, "termination.md", TERMINATION, "")  # a new version of the legal index
        after = await ask(c)
    assert after["expertgate"]["cache"]["status"] == "miss"
    assert len(llm.requests) == 2


async def test_no_cache_header_asks_the_model_again(app: Runtime, llm: FakeOpenAI) -> None:
    key = await make_key(app, "ana@example.com")
    llm.script(Reply("First answer."), Reply("Fresh answer."))
    async with client_as(app, key) as c:
        await ask(c)
        fresh = await ask(c, headers={"cache-control": "no-cache"})
        # The fresh answer replaced the one kept before.
        after = await ask(c)
    assert fresh["expertgate"]["cache"]["status"] == "bypass"
    assert fresh["choices"][0]["message"]["content"] == "Fresh answer."
    assert after["expertgate"]["cache"]["status"] == "hit"
    assert after["choices"][0]["message"]["content"] == "Fresh answer."
    assert len(llm.requests) == 2


async def test_a_streamed_request_replays_the_cached_answer(app: Runtime, llm: FakeOpenAI) -> None:
    await upload(app, "msa.md", MSA, "")
    key = await make_key(app, "ana@example.com")
    llm.script(Reply(RIGHT))
    async with client_as(app, key) as c:
        first = await ask(c)
        r = await c.post("/v1/chat/completions", json={**ASK, "stream": True})
    assert r.status_code == 200
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events if isinstance(e, dict)]
    deltas = [e["choices"][0]["delta"].get("content", "") for e in chunks]
    assert "".join(deltas) == RIGHT and sum(1 for d in deltas if d) > 1  # as deltas, not one block
    opened, finished = chunks[0], chunks[-1]
    assert opened["expertgate"]["cache"]["status"] == "hit" and opened["expertgate"]["citations"]
    assert finished["choices"][0]["finish_reason"] == "stop"
    assert finished["expertgate"]["cache"]["source_request_id"] == first["expertgate"]["request_id"]
    assert finished["expertgate"]["conversation_id"]
    assert len(llm.requests) == 1
    events_ = await audit_events(app, action="chat.completion")
    assert events_[-1].payload["stream"] is True and events_[-1].payload["cache"]["status"] == "hit"


async def test_answers_that_are_not_whole_or_later_turns_are_not_replayed(app: Runtime, llm: FakeOpenAI) -> None:
    key = await make_key(app, "ana@example.com")
    llm.script(Reply("Cut short", finish_reason="length"), Reply("Whole."), Reply("Next turn."), Reply("Next again."))
    async with client_as(app, key) as c:
        cut = await ask(c)
        whole = await ask(c)  # the cut answer was not kept
        follow = {"conversation_id": cut["expertgate"]["conversation_id"]}
        later = await ask(c, body=follow)
        later_again = await ask(c, body=follow)
    assert whole["expertgate"]["cache"]["status"] == "miss" and whole["choices"][0]["message"]["content"] == "Whole."
    assert later["expertgate"]["cache"]["status"] == "skipped"
    assert later_again["choices"][0]["message"]["content"] == "Next again."
    assert len(llm.requests) == 4


async def test_a_paraphrase_is_a_semantic_hit_and_a_near_miss_is_not(app: Runtime, llm: FakeOpenAI) -> None:
    """By the router's vector of the question (``model: auto``: the gate encodes it)."""
    key = await make_key(app, "ana@example.com")
    llm.script(Reply("Open Settings, then Reset password."), Reply("Open Settings, then API tokens."))

    async def question(c: httpx.AsyncClient, text: str) -> dict:  # type: ignore[type-arg]
        return await ask(c, body={"model": "auto", "messages": [{"role": "user", "content": text}]})

    async with client_as(app, key) as c:
        first = await question(c, "How do I reset my password?")
        near_miss = await question(c, "How do I reset my API token?")
        paraphrase = await question(c, "how can I reset my password")
    assert first["expertgate"]["expert"] == near_miss["expertgate"]["expert"] == "support"
    assert near_miss["expertgate"]["cache"]["status"] == "miss"
    assert near_miss["choices"][0]["message"]["content"] == "Open Settings, then API tokens."
    cache = paraphrase["expertgate"]["cache"]
    threshold = app.registry.get("support").cache.threshold
    assert cache["status"] == "hit" and cache["match"] == "semantic" and threshold <= cache["similarity"] < 1.0
    assert cache["source_request_id"] == first["expertgate"]["request_id"]
    assert paraphrase["choices"][0]["message"]["content"] == "Open Settings, then Reset password."
    assert len(llm.requests) == 2


async def test_a_client_that_leaves_a_replayed_stream_is_audited_as_aborted(app: Runtime, llm: FakeOpenAI) -> None:
    key = await make_key(app, "ana@example.com")
    llm.script(Reply(RIGHT))
    async with client_as(app, key) as c:
        await ask(c)
    async with app.db.session() as session:
        principal = principal_of(await IdentityService(session).ensure_user("ana@example.com"), "api")
    stream = await app.pipeline.open_stream(Question(principal, "legal", [("user", QUESTION)]))
    events = stream.__aiter__()
    opened = await events.__anext__()
    assert isinstance(opened, StreamOpened) and opened.cache is not None and opened.cache["status"] == "hit"
    await events.aclose()  # type: ignore[attr-defined]
    await stream.aclose()
    audited = await audit_events(app, action="chat.completion")
    assert [e.status for e in audited] == [200, 499]
    assert audited[-1].payload["error"]["code"] == "client_closed"
