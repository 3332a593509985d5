"""Quotas through the real app (SQLite, in-process limiter, fake LLM): 429 with
Retry-After naming the limit, x-ratelimit-* headers, degrade to the generalist, and the
token budget corrected from the real usage."""

from __future__ import annotations

import httpx

from backend.audit.types import Actor
from backend.quota.policies import PolicyChange, QuotaPolicies
from backend.runtime import Runtime
from tests.conftest import audit_events, client_as, make_key
from tests.fakes.openai_server import FakeOpenAI, Reply


async def set_policy(runtime: Runtime, scope: str, name: str, change: PolicyChange) -> None:
    async with runtime.db.transaction() as session:
        await QuotaPolicies(session, runtime.audit).set(Actor.cli("test"), scope, name, change)  # type: ignore[arg-type]


def ask(text: str = "hi", model: str = "general", stream: bool = False) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


async def test_over_the_rpm_limit_is_429_with_retry_after_and_the_limit_named(
    runtime: Runtime, llm: FakeOpenAI
) -> None:
    key = await make_key(runtime, "ivy@example.com")
    await set_policy(runtime, "user", "ivy@example.com", PolicyChange(rpm=2))
    async with client_as(runtime, key) as ivy:
        first = await ivy.post("/v1/chat/completions", json=ask())
        assert first.status_code == 200, first.text
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert (await ivy.post("/v1/chat/completions", json=ask(stream=True))).status_code == 200
        refused = await ivy.post("/v1/chat/completions", json=ask())
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        err = refused.json()["error"]
        assert err["code"] == "quota_exceeded" and err["type"] == "rate_limit_error"
        assert "user:ivy@example.com is limited to 2 requests per minute" in err["message"]
        streamed = await ivy.post("/v1/chat/completions", json=ask(stream=True))
        assert streamed.status_code == 429  # refused before the stream opens
    assert len(llm.requests) == 2  # refused requests never reached an LLM
    refusals = await audit_events(runtime, action="chat.completion", status=429)
    assert len(refusals) == 2 and all(e.user_email == "ivy@example.com" for e in refusals)


async def test_degrade_policy_serves_with_the_generalist(runtime: Runtime, llm: FakeOpenAI) -> None:
    key = await make_key(runtime, "jo@example.com")
    await set_policy(runtime, "user", "jo@example.com", PolicyChange(rpm=1, on_limit="degrade"))
    question = "what is the liability cap in the MSA contract?"
    async with client_as(runtime, key) as jo:
        r = await jo.post("/v1/chat/completions", json=ask(question, model="auto"))
        assert r.status_code == 200 and r.json()["expertgate"]["expert"] == "legal"
        r = await jo.post("/v1/chat/completions", json=ask(question, model="auto"))
        assert r.status_code == 200, r.text
        assert r.json()["expertgate"]["expert"] == "general"
        assert r.json()["expertgate"]["reason"] == "degraded"
        assert r.headers["x-ratelimit-degraded"].startswith("user:jo@example.com")


async def test_token_budget_counts_real_usage(runtime: Runtime, llm: FakeOpenAI) -> None:
    key = await make_key(runtime, "kim@example.com", team="ops")
    await set_policy(runtime, "team", "ops", PolicyChange(tokens_per_day=600))
    llm.script(Reply("one two three", prompt_tokens=20))  # 23 tokens really used
    async with client_as(runtime, key) as kim:
        r = await kim.post("/v1/chat/completions", json=ask())
        assert r.status_code == 200
        # Admitted on an estimate (prompt + the expert's max_tokens of 256): 600 - 257.
        assert r.headers["x-ratelimit-remaining-tokens"] == "343"
        r = await kim.post("/v1/chat/completions", json=ask())
        # Corrected to the 23 tokens really used before this admission: 600 - 23 - 257.
        assert r.headers["x-ratelimit-remaining-tokens"] == "320"
        usage = await kim.get("/api/v1/me/usage")
        assert usage.status_code == 200
        assert usage.json() == {
            "limits": [
                {
                    "subject": "team:ops",
                    "limit": "tokens_per_day",
                    "max": 600,
                    "remaining": 600 - 23 - 17,  # the second reply is the default: 11 prompt + 6 words
                    "reset_s": usage.json()["limits"][0]["reset_s"],
                    "on_limit": "reject",
                }
            ]
        }


async def test_usage_without_policies_is_empty(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/me/usage")
    assert r.status_code == 200 and r.json() == {"limits": []}
