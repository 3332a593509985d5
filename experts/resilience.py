"""Per-expert resilience: bounded retries with backoff, circuit breakers, extractive answers.

Framework-free and single-event-loop: the breakers are plain objects mutated only from
coroutines of one asyncio loop (one API process), so they need no locks. Each API
process keeps its own breakers; they are a local view of an endpoint's health.

Circuit breaker states::

    closed ──(failures consecutive failed calls)──> open
    open ──(cooldown_s elapsed, next call)──> half_open (exactly one probe call admitted)
    half_open ──probe succeeds──> closed      half_open ──probe fails──> open (cool-down again)

A call that the endpoint refuses (LLMRejected, a 4xx) proves the endpoint is up and counts
as a success for the breaker; it is never retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from experts.registry import ExpertSpec
from experts.types import Completion, Passage, Usage

EXTRACTIVE_MODEL = "expertgate/extractive"
EXTRACTIVE_FINISH = "extractive"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """What a breaker looks like now (for the admin API and metrics)."""

    expert: str
    state: BreakerState
    consecutive_failures: int
    failure_threshold: int
    cooldown_s: float
    retry_in_s: float  # seconds until an open breaker admits a probe (0 otherwise)
    opened_total: int  # how many times it opened since the process started


class CircuitBreaker:
    """One expert's breaker. ``acquire`` before a call; then exactly one of
    ``success``, ``failure`` or ``release`` (the call was abandoned, e.g. cancelled)."""

    def __init__(
        self,
        expert: str,
        failures: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or cooldown_s <= 0:
            raise ValueError("a breaker needs failures >= 1 and cooldown_s > 0")
        self.expert = expert
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._opened_total = 0

    @property
    def state(self) -> BreakerState:
        """The state a call arriving now would meet (open turns half-open after cool-down)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._cooldown_s

    def retry_in_s(self) -> float:
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._cooldown_s - (self._clock() - self._opened_at))

    def acquire(self) -> bool:
        """True when a call may go to the endpoint now (in half-open: the single probe)."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                return False
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    def failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            self._open()

    def release(self) -> None:
        """The admitted call ended without a verdict (cancelled): free the probe slot."""
        self._probe_in_flight = False

    def _open(self) -> None:
        if self._state is not BreakerState.OPEN:
            self._opened_total += 1
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._probe_in_flight = False

    def snapshot(self) -> BreakerSnapshot:
        return BreakerSnapshot(
            expert=self.expert,
            state=self.state,
            consecutive_failures=self._failures,
            failure_threshold=self._threshold,
            cooldown_s=self._cooldown_s,
            retry_in_s=round(self.retry_in_s(), 3),
            opened_total=self._opened_total,
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries after the first attempt, with exponential backoff and jitter.

    Attempt ``n`` (0-based) waits ``d/2 + uniform(0, d/2)`` with
    ``d = min(max_backoff_s, backoff_s * 2**n)``: growing, bounded, and de-synchronised
    across clients.
    """

    retries: int = 0
    backoff_s: float = 0.25
    max_backoff_s: float = 4.0

    @classmethod
    def of(cls, spec: ExpertSpec) -> RetryPolicy:
        return cls(spec.retries, spec.retry_backoff_s, spec.retry_max_backoff_s)

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def breaker_for(spec: ExpertSpec, clock: Callable[[], float] = time.monotonic) -> CircuitBreaker:
    return CircuitBreaker(spec.name, spec.breaker.failures, spec.breaker.cooldown_s, clock)


def extractive_completion(passages: Sequence[Passage], limit: int = 3) -> Completion:
    """An answer quoted from the retrieved passages, for when no LLM can answer.

    Clearly labelled in its text, its model (``expertgate/extractive``) and its
    finish reason (``extractive``). Generates nothing, so it costs no tokens.
    """
    lines = [
        "No language model could answer this in time, so this is an extractive answer: "
        "the most relevant passages from the knowledge base, quoted as they are.",
    ]
    for p in list(passages)[:limit]:
        text = " ".join(p.text.split())
        if len(text) > 600:
            text = text[:600].rsplit(" ", 1)[0] + " …"
        lines.append(f"[{p.number}] {p.title} ({p.source}): {text}")
    return Completion(
        text="\n\n".join(lines),
        model=EXTRACTIVE_MODEL,
        usage=Usage(),
        finish_reason=EXTRACTIVE_FINISH,
    )


__all__ = [
    "EXTRACTIVE_FINISH",
    "EXTRACTIVE_MODEL",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "RetryPolicy",
    "breaker_for",
    "extractive_completion",
]
