"""The dashboard's response-cache figures (GET /api/v1/admin/stats, ``cache``) through the
real app: the real router and encoder, litellm against the fake OpenAI server, the cache
on for the legal expert only. The figures must be exactly what the requests got (each
answer's ``expertgate.cache``), and an expert whose cache is off must say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.runtime import Runtime
from backend.settings import Settings
from tests.backend.cache.test_response_cache import MSA, QUESTION, RIGHT, upload
from tests.conftest import auth, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Reply

SUPPORT_QUESTION = "how do I reset my VPN password?"
FOLLOW_UP = {
    "model": "legal",
    "messages": [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": RIGHT},
        {"role": "user", "content": "and for breaches of confidentiality?"},
    ],
}


@pytest.fixture
def settings(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base, legal={"cache": {"enabled": True}}),
        bootstrap_admin=False,
    )


def first_turn(text: str, model: str = "legal") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


async def answer(http: httpx.AsyncClient, key: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    r = await http.post("/v1/chat/completions", headers={**auth(key), **headers}, json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def dashboard_cache(http: httpx.AsyncClient, runtime: Runtime) -> dict[str, Any]:
    auditor = await make_key(runtime, "audrey@example.com", roles={"auditor"})
    r = await http.get("/api/v1/admin/stats", headers=auth(auditor))
    assert r.status_code == 200, r.text
    return r.json()["cache"]  # type: ignore[no-any-return]


async def test_the_dashboard_counts_what_the_cache_did(
    http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI
) -> None:
    await upload(runtime, "msa.md", MSA, "")
    key = await make_key(runtime, "ana@example.com")
    llm.script(*[Reply(RIGHT) for _ in range(4)])  # the miss, the bypass, the follow-up, support
    replies = [
        await answer(http, key, first_turn(QUESTION)),  # miss: generated and kept
        await answer(http, key, first_turn(QUESTION)),  # hit, exact
        await answer(http, key, first_turn("what is the liability cap in our MSA")),  # hit, exact (normalised)
        await answer(http, key, first_turn(QUESTION), **{"Cache-Control": "no-cache"}),  # bypass: generated
        await answer(http, key, first_turn(QUESTION)),  # hit, exact (the answer the bypass kept)
        await answer(http, key, FOLLOW_UP),  # skipped: not a first turn
        await answer(http, key, first_turn("What is the cap on liability in our MSA?")),  # hit, semantic
    ]
    got = [r["expertgate"]["cache"] for r in replies]
    assert [c["status"] for c in got] == ["miss", "hit", "hit", "bypass", "hit", "skipped", "hit"]
    assert [c["match"] for c in got if c["status"] == "hit"] == ["exact", "exact", "exact", "semantic"]
    generated, regenerated = replies[0]["usage"]["total_tokens"], replies[3]["usage"]["total_tokens"]
    saved = [c["tokens_saved"] for c in got if c["status"] == "hit"]
    assert saved == [generated, generated, regenerated, regenerated] and generated > 0
    support = await answer(http, key, first_turn(SUPPORT_QUESTION, "support"))
    assert support["expertgate"].get("cache") is None  # its cache is off: no lookup, nothing recorded

    cache = await dashboard_cache(http, runtime)

    experts = {e["expert"]: e for e in cache["experts"]}
    assert list(experts) == runtime.registry.names  # every expert, in the registry's order
    assert cache["enabled"] == 1
    assert {name: e["enabled"] for name, e in experts.items()} == {
        "code": False, "legal": True, "support": False, "general": False
    }  # fmt: skip
    legal = experts["legal"]["counts"]
    assert legal == {
        "lookups": 5,  # the hits and the miss; the bypass and the follow-up were not looked up
        "hits": 4,
        "exact_hits": 3,
        "semantic_hits": 1,
        "misses": 1,
        "bypassed": 1,
        "skipped": 1,
        "hit_rate": 0.8,
        "tokens_saved": sum(saved),
    }
    # An expert with the cache off is reported as off, with nothing counted (not a 0%
    # hit rate as if it were on and missed every time).
    assert experts["support"]["enabled"] is False
    assert experts["support"]["counts"]["lookups"] == 0 and experts["support"]["counts"]["hit_rate"] is None
    assert cache["total"] == legal


async def test_an_empty_window_has_no_hit_rate(http: httpx.AsyncClient, runtime: Runtime) -> None:
    cache = await dashboard_cache(http, runtime)
    assert cache["enabled"] == 1
    assert cache["total"]["lookups"] == 0 and cache["total"]["hit_rate"] is None
    assert [e["expert"] for e in cache["experts"] if e["enabled"]] == ["legal"]
