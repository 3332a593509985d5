"""An endpoint asked for a stream even for an answer given whole (Endpoint.stream_upstream:
the embedded llama.cpp server, which finishes a plain completion whose caller has gone).
What it does to a real llama.cpp server is tested with the bundled model in
tests/e2e/test_local_llm.py."""

from __future__ import annotations

import pytest

from backend.runtime import build_endpoints
from experts.errors import AnswerIncomplete
from experts.llm import LiteLLMClient
from experts.registry import ExpertRegistry, GenerationParams
from experts.types import ChatMessage, Endpoint
from tests.fakes.openai_server import FakeOpenAI, Reply

QUESTION = [ChatMessage("user", "how do I rotate the deploy key?")]


def endpoint(llm: FakeOpenAI, *, stream_upstream: bool) -> Endpoint:
    return Endpoint("openai/fake-model", llm.api_base, "unused", 30.0, stream_upstream=stream_upstream)


async def test_a_whole_answer_is_joined_from_a_stream(llm: FakeOpenAI) -> None:
    llm.script(Reply("Rotate it in the vault, then redeploy the service.", prompt_tokens=17, finish_reason="length"))
    done = await LiteLLMClient().complete("code", endpoint(llm, stream_upstream=True), QUESTION, GenerationParams())
    assert llm.requests[-1]["stream"] is True
    assert done.text == "Rotate it in the vault, then redeploy the service."
    assert done.finish_reason == "length" and done.model
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (17, 9)


async def test_a_joined_stream_cut_short_is_an_incomplete_answer(llm: FakeOpenAI) -> None:
    llm.script(Reply("one two three four five six", end_early=2))
    with pytest.raises(AnswerIncomplete):
        await LiteLLMClient().complete("code", endpoint(llm, stream_upstream=True), QUESTION, GenerationParams())


async def test_other_endpoints_are_asked_for_a_plain_completion(llm: FakeOpenAI) -> None:
    llm.script(Reply("Rotate it in the vault."))
    done = await LiteLLMClient().complete("code", endpoint(llm, stream_upstream=False), QUESTION, GenerationParams())
    assert not llm.requests[-1].get("stream") and done.text == "Rotate it in the vault."


def test_only_the_embedded_server_is_streamed_upstream() -> None:
    registry = ExpertRegistry.from_mapping(
        {
            "experts": {
                "general": {
                    "description": "Everything the other experts do not cover.",
                    "system_prompt": "You are a helpful assistant.",
                    "llm": {"model": "openai/smollm2", "api_base": "local"},
                },
                "code": {
                    "description": "Programming questions and code review.",
                    "system_prompt": "You are a careful software engineer.",
                    "llm": {"model": "hosted_vllm/qwen", "api_base": "http://vllm:8000/v1"},
                },
            }
        }
    )
    endpoints = build_endpoints(registry, {}, "http://127.0.0.1:9/v1")
    assert endpoints["general"].stream_upstream and endpoints["general"].api_base == "http://127.0.0.1:9/v1"
    assert not endpoints["code"].stream_upstream
