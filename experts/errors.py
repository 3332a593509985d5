"""Errors raised by the experts package.

ExpertError
 ├── UnknownExpert        a name that is not in the registry
 ├── RegistryError        experts.yaml is missing or invalid (message names the field)
 ├── OutboundBlocked      the expert's outbound filter refused the request (PII policy)
 └── LLMError             a call to an expert's LLM failed
      ├── LLMUnavailable  the endpoint could not answer (connection, 5xx, rate limit)
      │    ├── LLMTimeout the endpoint did not answer within the expert's timeout
      │    ├── AnswerIncomplete the endpoint answered with nothing, or its stream
      │    │              ended before the model finished (no finish reason)
      │    └── CircuitOpen the expert's circuit breaker is open; nothing was sent
      ├── LLMRejected     the endpoint refused the request itself (4xx: bad request,
      │    │              auth); retrying will not help
      │    └── ContextTooLong the prompt does not fit the model's context window
      └── DeadlineExceeded the request's deadline passed before an answer began
"""

from __future__ import annotations


class ExpertError(Exception):
    """Base of every error raised by :mod:`experts`."""


class UnknownExpert(ExpertError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown expert {name!r}; known experts: {', '.join(known)}")
        self.name = name


class RegistryError(ExpertError):
    pass


class OutboundBlocked(ExpertError):
    """The text may not be sent to ``expert`` (its PII policy is ``block``)."""

    def __init__(self, expert: str, detail: str) -> None:
        super().__init__(f"expert {expert!r}: {detail}")
        self.expert = expert
        self.detail = detail


class LLMError(ExpertError):
    def __init__(self, expert: str, detail: str) -> None:
        super().__init__(f"expert {expert!r}: {detail}")
        self.expert = expert
        self.detail = detail


class LLMUnavailable(LLMError):
    pass


class LLMTimeout(LLMUnavailable):
    pass


class AnswerIncomplete(LLMUnavailable):
    """The endpoint said it answered but the answer is not whole: empty, or a stream that
    stopped without the model's finish reason (a server that dropped or interrupted it).
    Retried and failed over like any unavailability; never recorded as a success."""


class LLMRejected(LLMError):
    pass


class ContextTooLong(LLMRejected):
    """The prompt, with room for the answer, does not fit the model's context window
    (``limit`` tokens, when known): the caller must shorten it."""

    def __init__(self, expert: str, detail: str, limit: int | None = None) -> None:
        super().__init__(expert, detail)
        self.limit = limit


class DeadlineExceeded(LLMError):
    """The request's one deadline passed while its experts were tried (retries,
    fallbacks and back-off included): the caller gets an answer or this, never later."""


class CircuitOpen(LLMUnavailable):
    """The expert's circuit breaker is open: the endpoint was not called. ``retry_after_s``:
    when the breaker lets the next probe through."""

    def __init__(self, expert: str, detail: str, retry_after_s: float = 0.0) -> None:
        super().__init__(expert, detail)
        self.retry_after_s = retry_after_s
