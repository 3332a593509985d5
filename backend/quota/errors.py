"""Quota errors, with their HTTP status and stable code (see backend.errors)."""

from __future__ import annotations

from backend.errors import AppError, ServiceUnavailable


class QuotaExceeded(AppError):
    """429: a limit was hit; ``retry_after_s`` feeds the Retry-After header."""

    status, code, type = 429, "quota_exceeded", "rate_limit_error"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QuotaUnavailable(ServiceUnavailable):
    """503: the quota store failed and the setting is fail-closed."""

    code = "quota_unavailable"
