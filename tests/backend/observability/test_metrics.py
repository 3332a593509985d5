"""/metrics through the real app: counters move with real requests through the pipeline."""

from __future__ import annotations

import asyncio
import threading

import httpx
from prometheus_client.parser import text_string_to_metric_families

from backend.runtime import Runtime
from tests.conftest import TEST_GATE
from tests.fakes.openai_server import FakeOpenAI, Fault, Reply


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-request-id"]  # the app's request-id middleware is installed
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def ask(client: httpx.AsyncClient, text: str, model: str = "auto") -> httpx.Response:
    return await client.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}]}
    )


async def test_metrics_count_answers_fallbacks_failures_and_versions(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    before = await scrape(client)
    assert before[("expertgate_router_info", (("version", TEST_GATE),))] == 1.0
    assert not any(name == "expertgate_chat_requests_total" for name, _ in before)

    llm.script(Reply("Section 9 caps liability.", prompt_tokens=40))
    assert (
        await ask(client, "what does the liability cap clause in our master services agreement say?")
    ).status_code == 200
    llm.script(Fault(503), Reply("The generalist answers."))
    assert (await ask(client, "what is the liability cap in the MSA contract?")).status_code == 200
    llm.script(Fault(502))
    assert (await ask(client, "hi", model="legal")).status_code == 503

    m = await scrape(client)
    ok_legal = (
        "expertgate_chat_requests_total",
        (("code", ""), ("expert", "legal"), ("outcome", "ok"), ("reason", "routed")),
    )
    fallback = (
        "expertgate_chat_requests_total",
        (("code", ""), ("expert", "general"), ("outcome", "ok"), ("reason", "fallback")),
    )
    failed = (
        "expertgate_chat_requests_total",
        (("code", "expert_unavailable"), ("expert", "legal"), ("outcome", "error"), ("reason", "requested")),
    )
    assert m[ok_legal] == 1.0
    assert m[fallback] == 1.0
    assert m[failed] == 1.0
    assert m[("expertgate_fallbacks_total", (("expert", "legal"),))] == 1.0
    assert m[("expertgate_tokens_total", (("expert", "legal"), ("kind", "prompt")))] == 40.0
    assert m[("expertgate_routing_confidence_count", (("expert", "legal"),))] >= 2.0
    # The decided expert's confidence lies in (0, 1]: nothing above the last bucket.
    assert (
        m[("expertgate_routing_confidence_bucket", (("expert", "legal"), ("le", "1.0")))]
        == m[("expertgate_routing_confidence_count", (("expert", "legal"),))]
    )
    assert m[("expertgate_stage_seconds_count", (("stage", "total"),))] == 3.0
    assert m[("expertgate_stage_seconds_count", (("stage", "route"),))] == 3.0


async def test_in_flight_slots_per_expert_are_a_gauge(
    client: httpx.AsyncClient, llm: FakeOpenAI, runtime: Runtime
) -> None:
    release = threading.Event()
    llm.script(Reply("a held answer", hold=release))
    held = asyncio.create_task(ask(client, "what is the liability cap in the MSA contract?", model="legal"))
    while not llm.requests:
        assert not held.done(), (await held).text
        await asyncio.sleep(0.01)
    during = await scrape(client)
    assert during[("expertgate_expert_in_flight", (("expert", "legal"),))] == 1.0
    assert during[("expertgate_expert_in_flight", (("expert", "code"),))] == 0.0
    assert not any(name == "expertgate_queue_depth" for name, _ in during)  # no broker: no queue
    release.set()
    assert (await held).status_code == 200
    after = await scrape(client)
    assert after[("expertgate_expert_in_flight", (("expert", "legal"),))] == 0.0


async def test_each_runtime_has_its_own_registry(runtime: Runtime) -> None:
    from backend.observability.metrics import Metrics

    other = Metrics()
    other.requests.labels("legal", "ok", "routed", "").inc()
    assert b'expertgate_chat_requests_total{code="",expert="legal"' in other.render()
    assert b"expertgate_chat_requests_total{" not in runtime.metrics.render()
