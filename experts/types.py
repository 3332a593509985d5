"""Frozen values that cross the experts package boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as reported by the endpoint (0 when it reported none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how one expert's LLM is reached; built at wiring time.

    ``api_key`` is the resolved secret (never the env var name) or None for
    endpoints that need none. ``timeout_s`` bounds the whole call (for a stream: each
    read).
    """

    model: str
    api_base: str | None
    api_key: str | None = field(repr=False)
    timeout_s: float
    # Bound on opening the TCP connection alone (None: only ``timeout_s``).
    connect_timeout_s: float | None = None
    # Ask for a stream even for an answer given whole, and join it here: a server that
    # generates a plain completion to its end whoever waits for it (llama-cpp-python's
    # stops only a stream whose client has left) then stops when the caller goes, rather
    # than making the next caller queue behind an answer nobody reads. ``timeout_s`` then
    # bounds each read, as for a stream (the request's deadline bounds the whole).
    stream_upstream: bool = False


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    model: str
    usage: Usage
    finish_reason: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamDone:
    """Last event of a stream: why it stopped and what it cost."""

    finish_reason: str
    usage: Usage
    model: str


StreamEvent = TextDelta | StreamDone


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved passage handed to the expert, cited in the answer as [number]."""

    number: int
    title: str
    source: str
    text: str
    # Flagged by the documents' safety scan: the prompt fences it as quoted data, never
    # to be followed as instructions (experts/prompts.py).
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class FallbackStep:
    """One expert that was skipped on the way to the answer, and why."""

    expert: str
    error: str


@dataclass(frozen=True, slots=True)
class ExpertAnswer:
    """A finished answer: who produced it, and which experts failed before it."""

    expert: str
    completion: Completion
    fallbacks: tuple[FallbackStep, ...] = ()
    passages: int | None = None  # how many passages its prompt held (None: all given)
