"""Fitting a prompt into an expert's context window.

A model holds a fixed number of tokens, prompt and answer together. What is sent must
leave room for the answer (``max_tokens``), so before each call the prompt is measured
and, when it is too long, shortened in the order that loses least:

1. the oldest turns of the conversation (the last user message always stays),
2. the lowest-ranked passages (they are numbered by rank, so dropping from the end
   keeps every remaining citation number valid).

If the last user message alone (with the expert's instructions) still does not fit, the
request is refused with :class:`~experts.errors.ContextTooLong` naming the limit: the
caller must shorten it, and retrying or another replica will not help.

Tokens are estimated, not counted: ``ceil(chars / CHARS_PER_TOKEN)`` per message plus a
few tokens of chat-template framing. Three characters a token over-counts English prose
(about four with the small models' tokenizers) and is close for code, so the estimate
errs on the side of fitting; an endpoint that still refuses answers a context error,
which is mapped to the same ContextTooLong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from experts.errors import ContextTooLong
from experts.prompts import build_messages
from experts.registry import ExpertSpec
from experts.types import ChatMessage, Passage

CHARS_PER_TOKEN = 3.0
MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators of a chat template
SAFETY_TOKENS = 16  # generation prompt, BOS/EOS


def estimate_tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(math.ceil(len(m.content) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS for m in messages)


@dataclass(frozen=True, slots=True)
class FittedPrompt:
    """What goes to the endpoint, and what was left out to make it fit."""

    messages: list[ChatMessage]
    passages: int  # how many of the passages were kept (the first ``passages``)
    dropped_turns: int = 0
    estimated_tokens: int = 0


def fit_prompt(
    spec: ExpertSpec,
    conversation: Sequence[ChatMessage],
    passages: Sequence[Passage],
    max_tokens: int,
) -> FittedPrompt:
    """The prompt for ``spec`` within its context window, answer room included.

    Raises ContextTooLong when even the last user message does not fit.
    """
    window = spec.context_window
    messages = build_messages(spec, conversation, passages)
    if window is None:
        return FittedPrompt(messages, len(passages))
    budget = window - max_tokens - SAFETY_TOKENS
    turns = list(conversation)
    kept = list(passages)
    dropped = 0
    used = estimate_tokens(messages)
    while used > budget:
        # The oldest non-system turn before the last user message goes first.
        last_user = max(i for i, m in enumerate(turns) if m.role == "user")
        oldest = next((i for i, m in enumerate(turns) if m.role != "system" and i < last_user), None)
        if oldest is not None:
            del turns[oldest]
            dropped += 1
        elif kept:
            kept.pop()
        else:
            raise ContextTooLong(
                spec.name,
                f"the request needs about {used} tokens, and the {spec.name!r} expert's model holds "
                f"{window} tokens, of which {max_tokens} are kept for the answer: "
                f"shorten the message to under about {_chars(budget - used + _last_user_tokens(turns))} characters",
                limit=window,
            )
        messages = build_messages(spec, turns, kept)
        used = estimate_tokens(messages)
    return FittedPrompt(messages, len(kept), dropped, used)


def _last_user_tokens(turns: Sequence[ChatMessage]) -> int:
    last = next(m for m in reversed(turns) if m.role == "user")
    return estimate_tokens([last])


def _chars(tokens: int) -> int:
    """Characters that surely fit in ``tokens`` (rounded down to a hundred)."""
    return max(0, int((tokens - MESSAGE_OVERHEAD_TOKENS) * CHARS_PER_TOKEN) // 100 * 100)
