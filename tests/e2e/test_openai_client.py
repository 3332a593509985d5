"""The official `openai` client against a real server process and the real bundled model."""

from __future__ import annotations

import httpx
import pytest
from openai import NotFoundError, OpenAI

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> OpenAI:
    return OpenAI(base_url=f"{live_server.base_url}/v1", api_key=live_server.admin_key, max_retries=0)


@pytest.mark.parametrize("model", ["auto", "legal"])
def test_non_streamed_answer_carries_the_route(client: OpenAI, model: str) -> None:
    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What should an NDA with a supplier contain?"}],
        max_tokens=24,
    )
    assert r.choices[0].message.content and r.choices[0].message.content.strip()
    eg = r.model_extra["expertgate"]
    assert eg["expert"] == "legal"
    assert eg["reason"] == ("requested" if model == "legal" else "routed")
    assert eg["upstream_model"] == "smollm2-135m-instruct"
    assert r.usage is not None and r.usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["auto", "legal"])
def test_streamed_answer_carries_the_route(client: OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Is a verbal agreement a binding contract?"}],
        max_tokens=24,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[0].model_extra["expertgate"]["expert"] == "legal"
    last = chunks[-1].model_extra["expertgate"]
    assert last["conversation_id"]


def test_errors_reach_the_client_in_openai_shape(client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as info:
        client.chat.completions.create(model="finance", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_models_and_health(client: OpenAI, live_server: LiveServer) -> None:
    assert [m.id for m in client.models.list().data] == ["auto", "code", "legal", "support", "general"]
    assert httpx.get(f"{live_server.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live_server.base_url}/readyz").json()
    assert ready["checks"]["local_llm"] == "ok"
