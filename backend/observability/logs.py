"""Logging for every entrypoint, and structured logs: one JSON object per line, with the
HTTP request id of the request being served (EXPERTGATE_LOG_FORMAT=json).

:func:`setup_logging` is called once per process by its entrypoint (the CLI's main, each
``expertgate serve`` worker), before anything logs.

:class:`RequestIdMiddleware` takes a caller's ``X-Request-ID`` (when it is a short,
plain token) or makes one, keeps it in a context variable for the duration of the
request, and returns it in the response's ``X-Request-ID`` header unless the app set
that header itself (the chat API returns the request id it audits there).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("expertgate_request_id", default=None)

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
HEADER = b"x-request-id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(HEADER, b"").decode("latin-1")
        request_id = given if _VALID_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # An id the app set itself (the chat API's audited request id) wins.
                if not any(k.lower() == HEADER for k, _ in headers):
                    headers.append((HEADER, request_id.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class JsonFormatter(logging.Formatter):
    """ts, level, logger, message, request_id (when serving one), exc (traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json(logger: logging.Logger | None = None) -> None:
    """Give every handler of ``logger`` (default: root) the JSON formatter."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())


def setup_logging(settings: Settings) -> None:
    """Root logging to stderr at ``settings.log_level``, JSON lines when ``log_format`` is
    json, third-party chatter down to warnings, and PII redacted from every record."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.log_format == "json":
        use_json()
    for noisy in ("LiteLLM", "litellm", "httpx", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from backend.guard.logfilter import install as redact_pii_in_logs

    redact_pii_in_logs()
