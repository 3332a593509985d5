"""Application errors and the one table mapping every error to HTTP.

AppError                     status  code
 ├── BadRequest                400   invalid_request   (``param`` names the field)
 │                                    pii_blocked       (an expert's PII policy refused it)
 │                                    context_length_exceeded (longer than the model holds)
 │                                    slack_request_malformed (signed, but not a Slack payload)
 │                                    invalid_cursor    (a list's ``cursor`` it did not hand out:
 │                                                       backend/db/paging.py)
 ├── Unauthorized              401   invalid_api_key / slack_signature_invalid
 ├── Forbidden                 403   forbidden
 ├── NotFound                  404   not_found / model_not_found / slack_request_unhandled
 ├── Conflict                  409   conflict / review_decided (decided by someone else first)
 ├── PayloadTooLarge           413   input_too_large   (the messages: max_input_chars, max_messages)
 │                                    request_too_large (the HTTP body: max_body_bytes, backend/app.py)
 ├── ServiceUnavailable        503   expert_unavailable / expert_timeout / answer_incomplete
 │                                    / database_unavailable / not_ready (with Retry-After)
 │    └── SchemaNotCurrent          schema_not_current (backend/db/session.py: a reader
 │                                    found the schema missing or not at head)
 └── GatewayTimeout            504   deadline_exceeded (the request's one deadline passed)

Errors from the core packages are mapped by :func:`to_app_error` (``ERROR_TABLE``), so
routes, the Slack adapter and tasks all speak the same codes. The HTTP body is the
OpenAI error shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError as DatabaseDown
from sqlalchemy.exc import TimeoutError as DatabasePoolExhausted

from experts.errors import (
    AnswerIncomplete,
    CircuitOpen,
    ContextTooLong,
    DeadlineExceeded,
    LLMError,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
    OutboundBlocked,
    UnknownExpert,
)
from router.errors import ExpertNotAllowed, UnknownExpertName


class AppError(Exception):
    status: int = 500
    code: str = "internal_error"
    type: str = "server_error"
    retry_after_s: float | None = None  # sent as Retry-After (seconds, rounded up)

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequest(AppError):
    status, code, type = 400, "invalid_request", "invalid_request_error"


class Unauthorized(AppError):
    status, code, type = 401, "invalid_api_key", "authentication_error"


class Forbidden(AppError):
    status, code, type = 403, "forbidden", "permission_error"


class NotFound(AppError):
    status, code, type = 404, "not_found", "invalid_request_error"


class Conflict(AppError):
    status, code, type = 409, "conflict", "invalid_request_error"


class PayloadTooLarge(AppError):
    status, code, type = 413, "input_too_large", "invalid_request_error"


class ServiceUnavailable(AppError):
    status, code, type = 503, "expert_unavailable", "server_error"
    retry_after_s: float = 5.0  # sent as Retry-After; an error that knows better sets its own


class GatewayTimeout(AppError):
    status, code, type = 504, "deadline_exceeded", "server_error"
    retry_after_s: float = 5.0


# Core error type -> (AppError class, stable code). The first matching row wins, so
# subclasses come before their bases.
ERROR_TABLE: list[tuple[type[Exception], type[AppError], str]] = [
    (UnknownExpert, NotFound, "model_not_found"),
    (UnknownExpertName, NotFound, "model_not_found"),
    (ExpertNotAllowed, Forbidden, "expert_not_allowed"),
    (OutboundBlocked, BadRequest, "pii_blocked"),
    (ContextTooLong, BadRequest, "context_length_exceeded"),
    (DeadlineExceeded, GatewayTimeout, "deadline_exceeded"),
    (AnswerIncomplete, ServiceUnavailable, "answer_incomplete"),
    (LLMTimeout, ServiceUnavailable, "expert_timeout"),
    (LLMRejected, ServiceUnavailable, "expert_rejected"),
    (LLMUnavailable, ServiceUnavailable, "expert_unavailable"),
    (LLMError, ServiceUnavailable, "expert_unavailable"),
    # The database is locked, unreachable or out of connections: the request's
    # transaction was rolled back, nothing of it was written; the caller may retry.
    (DatabaseDown, ServiceUnavailable, "database_unavailable"),
    (DatabasePoolExhausted, ServiceUnavailable, "database_unavailable"),
]


def to_app_error(exc: Exception) -> AppError | None:
    """The AppError for a core exception, or None if the table has no row for it."""
    if isinstance(exc, AppError):
        return exc
    for source, target, code in ERROR_TABLE:
        if isinstance(exc, source):
            error = target(_message(exc), code=code, param=_param(exc, target))
            if isinstance(exc, CircuitOpen):
                error.retry_after_s = max(1.0, exc.retry_after_s)
            return error
    return None


def _message(exc: Exception) -> str:
    if isinstance(exc, ContextTooLong):
        return exc.detail
    if isinstance(exc, DeadlineExceeded):
        return f"the {exc.expert!r} expert gave no answer within the request's deadline: {exc.detail}"
    if isinstance(exc, AnswerIncomplete):
        return f"the {exc.expert!r} expert's language model did not give a whole answer: {exc.detail}"
    if isinstance(exc, LLMError):
        return f"the {exc.expert!r} expert's language model is unavailable: {exc.detail}"
    if isinstance(exc, DatabaseDown | DatabasePoolExhausted):
        # The driver's text can hold SQL and parameters: not for the caller.
        return "the database is busy or unreachable; nothing was saved, try again shortly"
    return str(exc)


def _param(exc: Exception, target: type[AppError]) -> str | None:
    if target is NotFound:
        return "model"
    return "messages" if isinstance(exc, ContextTooLong) else None
