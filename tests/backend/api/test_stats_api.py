"""GET /api/v1/admin/stats through the real app (SQLite, real router, litellm against
the fake server): the figures must match the audit events the requests left behind."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.audit.types import Actor
from backend.quota.policies import PolicyChange, QuotaPolicies
from backend.runtime import Runtime
from backend.settings import Settings
from tests.conftest import audit_events, auth, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Fault, Reply

CODE_QUESTION = "my python script raises KeyError in the parser, how do I fix it?"
PROMPT_PRICE, COMPLETION_PRICE = 0.5, 1.5  # USD per 1,000 tokens


@pytest.fixture
def settings(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
        cost_per_1k_prompt_tokens=PROMPT_PRICE,
        cost_per_1k_completion_tokens=COMPLETION_PRICE,
    )


def ask(text: str, model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


async def traffic(http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI) -> dict[str, str]:
    """Five chat requests: two legal and one support (team legal), one routed to code that
    falls back to the generalist and one refused over quota (team eng)."""
    keys = {
        "alice": await make_key(runtime, "alice@example.com", team="legal"),
        "bob": await make_key(runtime, "bob@example.com", team="eng"),
        "auditor": await make_key(runtime, "audrey@example.com", roles={"auditor"}),
    }
    async with runtime.db.transaction() as session:
        await QuotaPolicies(session, runtime.audit).set(
            Actor.cli("test"), "user", "bob@example.com", PolicyChange(rpm=1)
        )
    for question, model in [
        ("what is the liability cap in our MSA?", "legal"),
        ("may we ship encryption software to other countries?", "legal"),
        ("how do I reset my VPN password?", "support"),
    ]:
        r = await http.post("/v1/chat/completions", headers=auth(keys["alice"]), json=ask(question, model))
        assert r.status_code == 200, r.text
    llm.script(Fault(503), Reply("the generalist's answer"))
    r = await http.post("/v1/chat/completions", headers=auth(keys["bob"]), json=ask(CODE_QUESTION, "auto"))
    assert r.status_code == 200 and r.json()["expertgate"]["expert"] == "general", r.text
    r = await http.post("/v1/chat/completions", headers=auth(keys["bob"]), json=ask(CODE_QUESTION, "auto"))
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    # The app writes events to the outbox; the lifespan's chainer (not running under
    # ASGITransport) would move them to audit_events within milliseconds. Do it now.
    await runtime.chainer.drain()
    return keys


async def test_users_are_refused_and_auditors_read(http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI) -> None:
    keys = await traffic(http, runtime, llm)
    refused = await http.get("/api/v1/admin/stats", headers=auth(keys["alice"]))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "auditor_required"
    assert (await http.get("/api/v1/admin/stats")).status_code == 401
    assert (await http.get("/api/v1/admin/stats", headers=auth(keys["auditor"]))).status_code == 200


async def test_figures_match_the_audit_trail(http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI) -> None:
    keys = await traffic(http, runtime, llm)
    r = await http.get("/api/v1/admin/stats", headers=auth(keys["auditor"]))
    assert r.status_code == 200, r.text
    stats = r.json()
    events = await audit_events(runtime, action="chat.completion")
    assert len(events) == 5

    # Traffic and shares: per expert, as the trail records who answered.
    per_expert = Counter(e.expert for e in events)
    assert per_expert["legal"] == 2 and per_expert["general"] == 1
    series = {s["expert"]: s["counts"] for s in stats["traffic"]["series"]}
    assert {name: sum(c) for name, c in series.items() if sum(c)} == dict(per_expert)
    assert stats["window"]["bucket_s"] == 3600  # the default window: 24 h in hourly buckets
    assert len(stats["traffic"]["buckets"]) == len(series["legal"]) == 24
    shares = {e["expert"]: e for e in stats["experts"]}
    assert shares["legal"]["requests"] == 2 and shares["legal"]["share"] == pytest.approx(2 / 5)
    assert stats["dead_experts"] == [n for n in runtime.registry.names if not per_expert[n]]

    # Outcomes.
    outcomes = stats["outcomes"]
    assert outcomes["requests"] == 5
    assert outcomes["fallback"] == 1 and outcomes["quota_rejected"] == 1
    assert outcomes["abstained"] == sum(e.reason in ("low_confidence", "out_of_domain") for e in events)
    assert outcomes["errors"] == 0

    # Tokens and cost per team, from the events' usage.
    teams = {t["team"]: t for t in stats["teams"]}
    for team in ("legal", "eng"):
        mine = [e.payload.get("usage", {}) for e in events if e.team == team]
        prompt = sum(u.get("prompt_tokens", 0) for u in mine)
        completion = sum(u.get("completion_tokens", 0) for u in mine)
        assert (teams[team]["prompt_tokens"], teams[team]["completion_tokens"]) == (prompt, completion)
        assert prompt > 0
        cost = (prompt * PROMPT_PRICE + completion * COMPLETION_PRICE) / 1000
        assert teams[team]["cost_usd"] == pytest.approx(cost)
    assert teams["eng"]["quota_rejected"] == 1 and teams["legal"]["quota_rejected"] == 0
    assert teams["legal"]["requests"] == 3

    # Confidence histogram: one count per event with a routing confidence.
    confidences = [
        e.payload["route"]["confidence"] for e in events if e.payload.get("route", {}).get("confidence") is not None
    ]
    bins = stats["confidence"]
    assert len(bins) == 10 and sum(b["count"] for b in bins) == len(confidences) > 0
    for c in confidences:
        [home] = [b for b in bins if b["low"] <= c < b["high"] or (b["high"] == 1.0 and c == 1.0)]
        assert home["count"] >= 1

    # Latency percentiles per stage (all experts) and per expert, from the events.
    lat = {(s["expert"], s["stage"]): s for s in stats["latency"]}
    totals = sorted(e.payload["latency_ms"]["total"] for e in events if "total" in e.payload.get("latency_ms", {}))
    assert lat[("all", "total")]["samples"] == len(totals)
    assert lat[("all", "total")]["p50_ms"] == pytest.approx(totals[math.ceil(0.5 * len(totals)) - 1])
    assert lat[("all", "total")]["p95_ms"] == pytest.approx(totals[-1])
    assert lat[("legal", "generate")]["samples"] == 2
    assert stats["latency_samples"] == 5

    # Load balance: entropy of the expert choice over the registry's experts.
    p = [n / 5 for n in per_expert.values()]
    bits = -sum(x * math.log2(x) for x in p)
    assert stats["balance"]["entropy_bits"] == pytest.approx(bits, abs=1e-3)
    assert stats["balance"]["balance"] == pytest.approx(bits / math.log2(len(runtime.registry.names)), abs=1e-3)

    # The breaker of the expert that failed counted the failure.
    breakers = {b["expert"]: b for b in stats["breakers"]}
    assert breakers["code"]["consecutive_failures"] == 1 and breakers["code"]["state"] == "closed"
    assert set(breakers) == set(runtime.registry.names)


async def test_events_land_in_their_time_bucket(http: httpx.AsyncClient, runtime: Runtime, llm: FakeOpenAI) -> None:
    keys = await traffic(http, runtime, llm)
    now = datetime.now(UTC).replace(microsecond=0)
    since = now - timedelta(hours=2, minutes=30)
    r = await http.get(
        "/api/v1/admin/stats",
        headers=auth(keys["auditor"]),
        params={"since": since.isoformat(), "until": (now + timedelta(minutes=30)).isoformat(), "bucket": 3600},
    )
    assert r.status_code == 200, r.text
    stats = r.json()
    assert stats["window"]["bucket_s"] == 3600 and len(stats["traffic"]["buckets"]) == 3
    legal = next(s["counts"] for s in stats["traffic"]["series"] if s["expert"] == "legal")
    assert legal == [0, 0, 2]  # 2.5 h after `since`: the third hour

    # A window that ends before the events holds none of them.
    r = await http.get(
        "/api/v1/admin/stats",
        headers=auth(keys["auditor"]),
        params={"since": (now - timedelta(days=2)).isoformat(), "until": (now - timedelta(days=1)).isoformat()},
    )
    assert r.json()["outcomes"]["requests"] == 0
    assert r.json()["dead_experts"] == runtime.registry.names
    assert r.json()["balance"]["balance"] == 0.0


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z", "bucket": 60}, "bucket"),
    ],
)
async def test_bad_windows_are_400_naming_the_parameter(
    http: httpx.AsyncClient, runtime: Runtime, params: dict[str, str | int], param: str
) -> None:
    key = await make_key(runtime, "audrey@example.com", roles={"auditor"})
    r = await http.get("/api/v1/admin/stats", headers=auth(key), params=params)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request" and r.json()["error"]["param"] == param
