"""Resilience through the real app: breaker state on the admin API, short-circuiting,
and the extractive answer built from retrieved passages when every LLM is down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import client_as, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Fault

MSA = b"""# Master Services Agreement: Key Terms

## Liability cap

Each party's total liability under the MSA is capped at the fees paid in the twelve
months before the claim. The cap does not apply to breaches of confidentiality.
"""


@pytest.fixture
async def app_runtime(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(
            tmp_path / "experts.yaml", llm.api_base, code={"breaker": {"failures": 1, "cooldown_s": 600}}
        ),
        bootstrap_admin=False,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


async def test_breaker_opens_short_circuits_and_is_visible_to_admins(app_runtime: Runtime, llm: FakeOpenAI) -> None:
    admin = await make_key(app_runtime, "root@example.com", roles={"admin"})
    user = await make_key(app_runtime, "bob@example.com")
    async with client_as(app_runtime, admin) as root, client_as(app_runtime, user) as bob:
        r = await root.get("/api/v1/admin/experts/breakers")
        assert r.status_code == 200, r.text
        assert [(b["expert"], b["state"]) for b in r.json()["breakers"]] == [
            ("code", "closed"),
            ("legal", "closed"),
            ("support", "closed"),
            ("general", "closed"),
        ]
        assert (await bob.get("/api/v1/admin/experts/breakers")).status_code == 403

        llm.script(Fault(500))
        ask = {"model": "code", "messages": [{"role": "user", "content": "hi"}]}
        assert (await bob.post("/v1/chat/completions", json=ask)).status_code == 503
        r = await bob.post("/v1/chat/completions", json=ask)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "expert_unavailable"
        assert "circuit open" in r.json()["error"]["message"]
        assert len(llm.requests) == 1  # the second request never reached the endpoint

        code = next(b for b in (await root.get("/api/v1/admin/experts/breakers")).json()["breakers"])
        assert code["expert"] == "code" and code["state"] == "open" and code["opened_total"] == 1

        metrics = (await root.get("/metrics")).text
        assert 'expertgate_breaker_state{expert="code",state="open"} 1.0' in metrics
        assert 'expertgate_breaker_state{expert="code",state="closed"} 0.0' in metrics
        assert 'expertgate_breaker_state{expert="legal",state="closed"} 1.0' in metrics
        assert 'expertgate_breaker_opened_total{expert="code"} 1.0' in metrics


async def test_every_llm_down_answers_extractively_from_passages(app_runtime: Runtime, llm: FakeOpenAI) -> None:
    admin = await make_key(app_runtime, "root@example.com", roles={"admin"})
    async with client_as(app_runtime, admin) as root:
        r = await root.post(
            "/api/v1/documents", data={"domain": "legal", "groups": ""}, files=[("files", ("msa.md", MSA))]
        )
        assert r.status_code == 202, r.text
        llm.script(Fault(503), Fault(503))
        r = await root.post(
            "/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "what is the liability cap in the MSA?"}]},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        choice = body["choices"][0]
        assert choice["finish_reason"] == "extractive"
        assert choice["message"]["content"].startswith("No language model could answer this in time")
        assert "twelve" in choice["message"]["content"]
        assert body["expertgate"]["citations"]
        assert [f["expert"] for f in body["expertgate"]["fallbacks"]] == ["legal", "general"]
        assert len(llm.requests) == 2
