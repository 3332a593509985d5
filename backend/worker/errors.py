"""How a task failure is handled, decided by the same ERROR_TABLE as HTTP.

- expected: a client-side error (HTTP 4xx row, e.g. an unknown ingest job or a bad
  argument). Retrying cannot help, so the task fails once with the stable code.
- transient: an upstream that may come back (HTTP 503 rows: an expert's LLM timed out or
  is down) or a lost connection to PostgreSQL / Redis / the network. Retried with
  exponential backoff and jitter, up to a bound.
- unexpected: anything else (a bug). Fails once, logged with its traceback; never
  retried in a loop.
"""

from __future__ import annotations

import enum
import random

from backend.errors import AppError, to_app_error


class Handling(enum.Enum):
    EXPECTED = "expected"
    TRANSIENT = "transient"
    UNEXPECTED = "unexpected"


class TaskFailed(Exception):
    """What a failed task stores as its result: ``"<code>: <message>"`` (JSON-safe)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    @property
    def code(self) -> str:
        return self.text.split(":", 1)[0]


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    # Driver errors are recognised by type name: the worker must not import every
    # driver to classify (and SQLAlchemy wraps them anyway).
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"OperationalError", "InterfaceError"} and getattr(exc, "connection_invalidated", True):
        return True
    return bool(names & {"RedisConnectionError", "BusyLoadingError"}) or (
        "ConnectionError" in names and type(exc).__module__.startswith("redis")
    )


def classify(exc: BaseException) -> tuple[Handling, str]:
    """(how to handle ``exc``, its stable error code)."""
    if isinstance(exc, Exception):
        app_error = to_app_error(exc)
        if app_error is not None:
            if app_error.status >= 500:
                return Handling.TRANSIENT, app_error.code
            return Handling.EXPECTED, app_error.code
    if _is_connection_error(exc):
        return Handling.TRANSIENT, "connection_error"
    if isinstance(exc, ValueError):
        # Services raise ValueError for bad input (e.g. training without examples).
        return Handling.EXPECTED, "invalid_request"
    return Handling.UNEXPECTED, "internal_error"


def backoff_s(retries: int, *, base: float = 2.0, cap: float = 300.0, rng: random.Random | None = None) -> float:
    """Delay before retry number ``retries + 1``: base * 2**retries, capped, +-25% jitter."""
    delay = min(cap, base * (2.0 ** max(0, retries)))
    jitter: float = (rng or random.Random()).uniform(-0.25, 0.25) * delay
    return max(0.1, delay + jitter)


def failure(exc: BaseException) -> TaskFailed:
    _, code = classify(exc)
    message = exc.message if isinstance(exc, AppError) else str(exc) or type(exc).__name__
    return TaskFailed(f"{code}: {message}")
