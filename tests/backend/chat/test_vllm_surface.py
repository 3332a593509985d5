"""The expert path to a vLLM endpoint (``hosted_vllm/<served name>``), against the fake
server speaking vLLM's surface: model cards, its 404/400 error envelope, streamed usage.

vLLM itself needs a GPU; docs/deploy.md says how to run the same checks against one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from experts.errors import LLMRejected
from experts.llm import LiteLLMClient
from experts.registry import GenerationParams
from experts.types import ChatMessage, Endpoint, StreamDone, TextDelta
from router.encoder import Encoder
from tests.conftest import make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Reply, VllmSurface

SURFACE = VllmSurface(served_model="qwen3-moe", root="Qwen/Qwen3-30B-A3B", max_model_len=512)
HELLO = [ChatMessage("user", "hello")]


@pytest.fixture(scope="module")
def vllm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(vllm=SURFACE).start()
    yield server
    server.stop()


def endpoint(server: FakeOpenAI, model: str = "hosted_vllm/qwen3-moe") -> Endpoint:
    return Endpoint(model=model, api_base=server.api_base, api_key="unused", timeout_s=5)


def test_models_list_has_vllms_model_card(vllm: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=vllm.api_base, api_key="unused")
    [card] = client.models.list().data
    assert card.id == "qwen3-moe" and card.owned_by == "vllm"
    extra = card.model_extra or {}
    assert extra["root"] == "Qwen/Qwen3-30B-A3B" and extra["max_model_len"] == 512


async def test_completion_goes_to_the_served_model_name(vllm: FakeOpenAI) -> None:
    vllm.script(Reply("four experts are active per token"))
    completion = await LiteLLMClient().complete("code", endpoint(vllm), HELLO, GenerationParams(max_tokens=64))
    assert completion.text == "four experts are active per token"
    assert vllm.requests[-1]["model"] == "qwen3-moe"  # litellm strips the hosted_vllm/ prefix


async def test_warm_up_contacts_no_endpoint_and_leaves_the_client_working(vllm: FakeOpenAI) -> None:
    import litellm

    vllm.reset()
    callbacks = (list(litellm.callbacks), list(litellm.success_callback), list(litellm.failure_callback))
    client = LiteLLMClient()
    await client.warm()
    assert vllm.requests == []  # litellm's mock completion: nothing was sent anywhere
    assert (litellm.callbacks, litellm.success_callback, litellm.failure_callback) == callbacks
    vllm.script(Reply("warm and answering"))
    completion = await client.complete("code", endpoint(vllm), HELLO, GenerationParams(max_tokens=8))
    assert completion.text == "warm and answering" and len(vllm.requests) == 1


async def test_warm_up_describes_self_hosted_models_litellm_does_not_know(vllm: FakeOpenAI) -> None:
    import litellm

    served = f"hosted_vllm/moe-{uuid.uuid4().hex[:8]}"  # litellm's map is process-wide
    hosted_unknown = f"openai/unknown-{uuid.uuid4().hex[:8]}"
    known_price = litellm.get_model_info(model="openai/gpt-4o-mini")["input_cost_per_token"]
    assert known_price
    endpoints = [
        endpoint(vllm, served),
        endpoint(vllm, "openai/gpt-4o-mini"),  # known to litellm, even behind an api_base
        Endpoint(model=hosted_unknown, api_base=None, api_key="k", timeout_s=5),  # a hosted API
    ]
    with pytest.raises(Exception, match="mapped"):
        litellm.get_model_info(model=served)
    await LiteLLMClient().warm(endpoints)
    info = litellm.get_model_info(model=served)
    assert (info["input_cost_per_token"], info["output_cost_per_token"], info["mode"]) == (0.0, 0.0, "chat")
    assert litellm.get_model_info(model="openai/gpt-4o-mini")["input_cost_per_token"] == known_price
    with pytest.raises(Exception, match="mapped"):
        litellm.get_model_info(model=hosted_unknown)


async def test_streaming_reports_usage_from_the_final_chunk(vllm: FakeOpenAI) -> None:
    vllm.script(Reply("one two three", prompt_tokens=17))
    events = [e async for e in LiteLLMClient().stream("code", endpoint(vllm), HELLO, GenerationParams(max_tokens=64))]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two three"
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (17, 3)
    assert vllm.requests[-1]["stream_options"] == {"include_usage": True}


async def test_a_prompt_over_max_model_len_is_rejected_with_vllms_message(vllm: FakeOpenAI) -> None:
    long = [ChatMessage("user", "clause " * 400)]  # ~700 tokens by the server's estimate
    with pytest.raises(LLMRejected, match="maximum context length is 512 tokens"):
        await LiteLLMClient().complete("legal", endpoint(vllm), long, GenerationParams(max_tokens=64))
    # Raw, the body is vLLM's envelope: the HTTP status repeated as an integer code.
    async with httpx.AsyncClient() as client:
        raw = await client.post(
            f"{vllm.api_base}/chat/completions",
            json={"model": "qwen3-moe", "messages": [{"role": "user", "content": "clause " * 400}]},
        )
    assert raw.status_code == 400
    assert raw.json()["error"]["type"] == "BadRequestError" and raw.json()["error"]["code"] == 400


async def test_an_unknown_served_name_is_rejected(vllm: FakeOpenAI) -> None:
    with pytest.raises(LLMRejected, match="does not exist"):
        await LiteLLMClient().complete("code", endpoint(vllm, "hosted_vllm/mixtral"), HELLO, GenerationParams())


@pytest.fixture
async def vllm_runtime(tmp_path: Path, gate_dir: Path, vllm: FakeOpenAI, encoder: Encoder) -> Runtime:
    experts = write_experts_yaml(tmp_path / "experts.yaml", vllm.api_base)
    text = experts.read_text().replace("openai/fake-model", "hosted_vllm/qwen3-moe")
    experts.write_text(text)
    return build_runtime(
        Settings(data_dir=tmp_path / "data", router_dir=gate_dir, experts_file=experts, bootstrap_admin=False),
        encoder=encoder,
        environ={},
    )


async def test_the_app_answers_through_a_vllm_expert_and_maps_its_refusal(
    vllm_runtime: Runtime, vllm: FakeOpenAI
) -> None:
    from backend.app import create_app

    app = create_app(vllm_runtime.settings, vllm_runtime)
    key = await make_key(vllm_runtime, "dev@example.com")
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"authorization": f"Bearer {key}"}
        ) as client:
            app.state.runtime = vllm_runtime
            vllm.script(Reply("Rebase onto main, then push with --force-with-lease."))
            ok = await client.post(
                "/v1/chat/completions",
                json={"model": "code", "messages": [{"role": "user", "content": "how do I update my branch?"}]},
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["expertgate"]["upstream_model"] is not None
            assert vllm.requests[-1]["model"] == "qwen3-moe"

            too_long = await client.post(
                "/v1/chat/completions",
                json={"model": "code", "messages": [{"role": "user", "content": "stack trace line " * 300}]},
            )
            # The caller must shorten it: a 400 naming the limit, not a 503 to retry.
            assert too_long.status_code == 400, too_long.text
            assert too_long.json()["error"]["code"] == "context_length_exceeded"
            assert "maximum context length is 512 tokens" in too_long.json()["error"]["message"]
    finally:
        await vllm_runtime.close()
