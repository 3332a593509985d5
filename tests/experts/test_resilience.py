"""Retries, circuit breakers, deadlines and the extractive answer, against the fake
OpenAI server with injected faults (litellm's real client path runs)."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import pytest

from experts.errors import CircuitOpen, LLMRejected, LLMTimeout, LLMUnavailable, RegistryError
from experts.llm import LiteLLMClient
from experts.registry import ExpertRegistry
from experts.resilience import (
    EXTRACTIVE_FINISH,
    EXTRACTIVE_MODEL,
    BreakerState,
    CircuitBreaker,
    RetryPolicy,
)
from experts.service import ExpertService, StreamStart
from experts.types import ChatMessage, Endpoint, Passage, StreamDone, TextDelta
from tests.fakes.openai_server import FakeOpenAI, Fault, Reply

ASK = [ChatMessage("user", "how do I rotate the signing key?")]
PASSAGES = [
    Passage(1, "Key rotation runbook", "runbooks/keys.md", "Rotate the signing key with `kr rotate --now`."),
    Passage(2, "Security policy", "policy/security.md", "Keys are rotated every 90 days."),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def registry(**code: Any) -> ExpertRegistry:
    body = {
        "description": "engineering questions and runbooks",
        "system_prompt": "You are the engineering expert.",
        "fallback": ["general"],
        **code,
    }
    return ExpertRegistry.from_mapping(
        {
            "defaults": {"llm": {"model": "openai/fake-model", "api_base": "http://unused"}},
            "experts": {
                "code": body,
                "general": {
                    "description": "anything no expert owns",
                    "system_prompt": "You are a helpful assistant.",
                },
            },
        }
    )


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def service(llm: FakeOpenAI, clock: Clock | None = None, sleeps: Sleeps | None = None, **code: Any) -> ExpertService:
    reg = registry(**code)
    endpoints = {
        spec.name: Endpoint("openai/fake-model", llm.api_base, "unused", spec.timeout_s, spec.connect_timeout_s)
        for spec in reg
    }
    # The breakers may read a clock the test moves, so cool-downs need no real waiting.
    breakers = (
        {s.name: CircuitBreaker(s.name, s.breaker.failures, s.breaker.cooldown_s, clock) for s in reg}
        if clock is not None
        else None
    )
    return ExpertService(
        reg, LiteLLMClient(), endpoints, breakers=breakers, sleep=sleeps or Sleeps(), rng=random.Random(7)
    )


async def test_transient_errors_are_retried_with_growing_backoff(llm: FakeOpenAI) -> None:
    sleeps = Sleeps()
    svc = service(llm, sleeps=sleeps, retries=2, retry_backoff_s=0.1)
    llm.script(Fault(503), Fault(502), Reply("third time lucky"))
    answer = await svc.answer("code", ASK, allow_fallback=False)
    assert answer.expert == "code"
    assert answer.completion.text == "third time lucky"
    assert len(llm.requests) == 3
    assert len(sleeps.delays) == 2
    assert 0.05 <= sleeps.delays[0] <= 0.1 and 0.1 <= sleeps.delays[1] <= 0.2
    assert svc.breaker("code").state is BreakerState.CLOSED
    assert svc.breaker("code").consecutive_failures == 0


async def test_retries_are_bounded_then_the_fallback_answers(llm: FakeOpenAI) -> None:
    svc = service(llm, retries=1)
    llm.script(Fault(500), Fault(500), Reply("the generalist"))
    answer = await svc.answer("code", ASK)
    assert answer.expert == "general"
    assert [s.expert for s in answer.fallbacks] == ["code"]
    assert len(llm.requests) == 3


async def test_a_rejected_request_is_not_retried(llm: FakeOpenAI) -> None:
    sleeps = Sleeps()
    svc = service(llm, sleeps=sleeps, retries=3)
    llm.script(Fault(400, "bad request"))
    with pytest.raises(LLMRejected):
        await svc.answer("code", ASK)
    assert len(llm.requests) == 1
    assert sleeps.delays == []
    assert svc.breaker("code").consecutive_failures == 0


async def test_breaker_opens_and_short_circuits_without_calling_the_endpoint(llm: FakeOpenAI) -> None:
    clock = Clock()
    svc = service(llm, clock, breaker={"failures": 2, "cooldown_s": 30})
    llm.script(Fault(500), Fault(500))
    for _ in range(2):
        with pytest.raises(LLMUnavailable):
            await svc.answer("code", ASK, allow_fallback=False)
    snap = svc.breaker("code")
    assert snap.state is BreakerState.OPEN and snap.opened_total == 1
    assert snap.retry_in_s == 30
    with pytest.raises(CircuitOpen):
        await svc.answer("code", ASK, allow_fallback=False)
    assert len(llm.requests) == 2  # the open breaker sent nothing
    # With fallback, the open expert is skipped at once and the generalist answers.
    llm.script(Reply("general answers"))
    answer = await svc.answer("code", ASK)
    assert answer.expert == "general"
    assert "circuit open" in answer.fallbacks[0].error
    assert len(llm.requests) == 3


async def test_half_open_probe_closes_the_breaker_or_reopens_it(llm: FakeOpenAI) -> None:
    clock = Clock()
    svc = service(llm, clock, breaker={"failures": 1, "cooldown_s": 10})
    llm.script(Fault(503))
    with pytest.raises(LLMUnavailable):
        await svc.answer("code", ASK, allow_fallback=False)
    assert svc.breaker("code").state is BreakerState.OPEN
    clock.now += 10
    assert svc.breaker("code").state is BreakerState.HALF_OPEN
    # A failed probe opens it again for a full cool-down.
    llm.script(Fault(503))
    with pytest.raises(LLMUnavailable):
        await svc.answer("code", ASK, allow_fallback=False)
    assert svc.breaker("code").state is BreakerState.OPEN
    assert svc.breaker("code").opened_total == 2
    clock.now += 9
    with pytest.raises(CircuitOpen):
        await svc.answer("code", ASK, allow_fallback=False)
    clock.now += 1
    llm.script(Reply("recovered"))
    answer = await svc.answer("code", ASK, allow_fallback=False)
    assert answer.completion.text == "recovered"
    assert svc.breaker("code").state is BreakerState.CLOSED
    assert len(llm.requests) == 3


def test_half_open_admits_a_single_probe_and_release_frees_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker("code", failures=1, cooldown_s=5, clock=clock)
    assert breaker.acquire()
    breaker.failure()
    assert not breaker.acquire()
    clock.now += 5
    assert breaker.acquire()  # the probe
    assert not breaker.acquire()  # everyone else waits for its verdict
    breaker.release()  # the probe was cancelled: no verdict, slot freed
    assert breaker.acquire()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.acquire() and breaker.acquire()


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(retries=5, backoff_s=0.5, max_backoff_s=2.0)
    rng = random.Random(1)
    delays = [[policy.delay(n, rng) for n in range(5)] for _ in range(50)]
    for n, ceiling in enumerate([0.5, 1.0, 2.0, 2.0, 2.0]):
        column = [row[n] for row in delays]
        assert all(ceiling / 2 <= d <= ceiling for d in column)
        assert len(set(column)) > 40  # jittered, not synchronised


async def test_all_llms_down_with_passages_gives_a_labelled_extractive_answer(
    llm: FakeOpenAI, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    svc = service(llm)
    llm.script(Fault(503), Fault(500))
    with caplog.at_level(logging.WARNING, logger="experts.service"):
        answer = await svc.answer("code", ASK, PASSAGES)
    # The server log says why, expert by expert, not only the audit event.
    logged = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in logged] == [
        "expert code did not answer",
        "expert general did not answer",
        "no model answered for code",
    ]
    # ... and litellm's own banner, which says nothing about the failure, is not printed.
    assert "Give Feedback" not in capsys.readouterr().out
    assert answer.completion.finish_reason == EXTRACTIVE_FINISH
    assert answer.completion.model == EXTRACTIVE_MODEL
    assert answer.completion.text.startswith("No language model could answer this in time")
    assert "extractive answer" in answer.completion.text
    assert "[1] Key rotation runbook (runbooks/keys.md): Rotate the signing key" in answer.completion.text
    assert [s.expert for s in answer.fallbacks] == ["code", "general"]
    assert answer.completion.usage.total_tokens == 0


async def test_all_llms_down_without_passages_still_raises(llm: FakeOpenAI) -> None:
    svc = service(llm)
    llm.script(Fault(503), Fault(500))
    with pytest.raises(LLMUnavailable):
        await svc.answer("code", ASK, [])


async def test_requested_expert_gets_no_extractive_answer(llm: FakeOpenAI) -> None:
    svc = service(llm)
    llm.script(Fault(503))
    with pytest.raises(LLMUnavailable):
        await svc.answer("code", ASK, PASSAGES, allow_fallback=False)


async def collect(svc: ExpertService, **kwargs: Any) -> tuple[str | None, str, StreamDone | None]:
    expert, text, done = None, "", None
    async for event in svc.stream("code", ASK, **kwargs):
        if isinstance(event, StreamStart):
            expert = event.expert
        elif isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, StreamDone):
            done = event
    return expert, text, done


async def test_stream_retries_before_the_first_token(llm: FakeOpenAI) -> None:
    svc = service(llm, retries=1)
    llm.script(Fault(503), Reply("streamed after a retry"))
    expert, text, done = await collect(svc, allow_fallback=False)
    assert (expert, text) == ("code", "streamed after a retry")
    assert done is not None and done.finish_reason == "stop"
    assert len(llm.requests) == 2
    assert svc.breaker("code").consecutive_failures == 0


async def test_stream_first_token_deadline(llm: FakeOpenAI) -> None:
    # The fake answers only once the test lets it (after the assertions), so the timeout
    # cannot have been beaten by a slow reply; the endpoint's own timeout (60 s) is far
    # beyond the test's bound, so only the first-token deadline can end the call in time.
    svc = service(llm, first_token_timeout_s=0.3, timeout_s=60)
    answer = threading.Event()
    llm.script(Reply("too slow", hold=answer))
    try:
        started = time.perf_counter()
        with pytest.raises(LLMTimeout, match=r"no first token within 0\.3s"):
            await collect(svc, allow_fallback=False)
        # The deadline being kept is the point, so this is wall-clock: 0.3 s plus
        # generous room for a loaded machine, well short of the 60 s a missing
        # first-token deadline would cost (the fake never answers before `answer`).
        assert time.perf_counter() - started < 10
        assert svc.breaker("code").consecutive_failures == 1
    finally:
        answer.set()  # the fake's held handler returns now: nothing is left for the next test


async def test_stream_broken_mid_answer_is_not_retried(llm: FakeOpenAI) -> None:
    svc = service(llm, retries=2)
    llm.script(Reply("one two three four", break_after=2))
    with pytest.raises(LLMUnavailable):
        await collect(svc)
    assert len(llm.requests) == 1  # something was sent: no retry, no fallback
    assert svc.breaker("code").consecutive_failures == 1


async def test_stream_extractive_when_everything_is_down(llm: FakeOpenAI) -> None:
    svc = service(llm)
    llm.script(Fault(503), Fault(503))
    expert, text, done = await collect(svc, passages=PASSAGES)
    assert expert == "code"
    assert text.startswith("No language model could answer this in time")
    assert done is not None and done.finish_reason == EXTRACTIVE_FINISH and done.model == EXTRACTIVE_MODEL


async def test_open_breaker_short_circuits_streams_too(llm: FakeOpenAI) -> None:
    clock = Clock()
    svc = service(llm, clock, breaker={"failures": 1, "cooldown_s": 60})
    llm.script(Fault(500))
    with pytest.raises(LLMUnavailable):
        await collect(svc, allow_fallback=False)
    with pytest.raises(CircuitOpen):
        await collect(svc, allow_fallback=False)
    assert len(llm.requests) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"breaker": {"failures": 0}}, r"experts\.code\.breaker\.failures"),
        ({"breaker": {"cooldown": 3}}, r"experts\.code\.breaker\.cooldown: unknown field"),
        ({"retries": 11}, r"experts\.code\.retries"),
        ({"first_token_timeout_s": 30, "timeout_s": 10}, r"first_token_timeout_s must not exceed"),
    ],
)
def test_resilience_settings_are_validated(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RegistryError, match=field):
        registry(**change)


def test_defaults_are_safe() -> None:
    spec = registry().get("code")
    assert spec.retries == 0 and spec.breaker.failures == 5 and spec.breaker.cooldown_s == 30
    assert spec.first_token_timeout_s is None and spec.connect_timeout_s == 5
