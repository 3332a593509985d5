"""Errors raised by the experts package.

ExpertError
 ├── UnknownExpert        a name that is not in the registry
 ├── RegistryError        experts.yaml is missing or invalid (message names the field)
 ├── OutboundBlocked      the expert's outbound filter refused the request (PII policy)
 └── LLMError             a call to an expert's LLM failed
      ├── LLMUnavailable  the endpoint could not answer (connection, 5xx, rate limit)
      │    ├── LLMTimeout the endpoint did not answer within the expert's timeout
      │    └── CircuitOpen the expert's circuit breaker is open; nothing was sent
      └── LLMRejected     the endpoint refused the request itself (4xx: bad request,
                          context too long, auth); retrying will not help
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


class LLMRejected(LLMError):
    pass


class CircuitOpen(LLMUnavailable):
    """The expert's circuit breaker is open: the endpoint was not called."""
