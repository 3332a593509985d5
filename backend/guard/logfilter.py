"""A logging filter that redacts PII from every record before a handler writes it."""

from __future__ import annotations

import logging

from backend.guard.pii import PiiDetector

_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Formats the record's message, redacts it, and freezes it (args cleared).

    Attach it to handlers (not loggers) so records from every logger pass through it.
    """

    def __init__(self, detector: PiiDetector | None = None) -> None:
        super().__init__()
        self._detector = detector or PiiDetector()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._detector.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Tracebacks carry exception messages (which may quote input): format and
            # redact them here; handlers print exc_text as is.
            record.exc_text = self._detector.redact(_FORMATTER.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self._detector.redact(record.exc_text)
        return True


def install(root: logging.Logger | None = None) -> None:
    """Add a RedactingFilter to every handler of ``root`` (default: the root logger)."""
    root = root or logging.getLogger()
    detector = PiiDetector()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(detector))
