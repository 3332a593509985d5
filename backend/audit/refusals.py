"""Audit events for requests refused at the HTTP edge (after or during authentication).

The pipeline records chat requests itself, with their routing trace; this module covers
everything else that ends in an error: a forged or revoked key, a user asking for
someone else's conversation or audit event, an auditor attempting an admin action,
invalid input. Each becomes one ``http.refused`` / ``auth.failed`` event.
"""

from __future__ import annotations

import logging
from typing import Protocol

from fastapi.exceptions import RequestValidationError

from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail, is_recorded, mark_recorded
from backend.db.session import Database
from backend.errors import AppError, BadRequest, to_app_error
from backend.principal import Principal

log = logging.getLogger(__name__)

AUTH_FAILED = "auth.failed"
HTTP_REFUSED = "http.refused"


def _app_error(exc: Exception) -> AppError:
    if isinstance(exc, RequestValidationError):
        return BadRequest("the request is not valid")
    return to_app_error(exc) or AppError("internal error")


async def record_refusal(
    db: Database,
    trail: AuditTrail,
    principal: Principal,
    exc: Exception,
    *,
    method: str,
    path: str,
    request_id: str | None = None,
) -> None:
    """Audit ``exc`` ending an authenticated request, unless already audited.

    Best effort by design: if the audit write itself fails, that is logged and the
    caller re-raises the original error (a refusal must not turn into a 500).
    """
    if is_recorded(exc):
        return
    error = _app_error(exc)
    entry = AuditEntry(
        action=HTTP_REFUSED,
        outcome=Outcome.for_status(error.status),
        actor=Actor.of(principal),
        request_id=request_id,
        status=error.status,
        payload={
            "method": method,
            "path": path,
            "error": {"code": error.code, "message": trail.redact_free_text(error.message)},
        },
    )
    try:
        await trail.record(db, entry)
    except Exception:
        log.exception("could not audit a refused request (%s %s)", method, path)
        return
    mark_recorded(exc)


class KnownKey(Protocol):
    """The stored key a presented secret matched by prefix (identity's KeyInfo)."""

    @property
    def key_id(self) -> int: ...

    @property
    def email(self) -> str: ...


async def record_auth_failure(
    db: Database,
    trail: AuditTrail,
    *,
    reason: str,
    key: KnownKey | None,
    presented_prefix: str,
    method: str,
    path: str,
    client: str | None,
    channel: str = "api",
) -> None:
    """Audit a presented key that did not authenticate (forged, revoked, user disabled)."""
    entry = AuditEntry(
        action=AUTH_FAILED,
        outcome=Outcome.REFUSED,
        actor=Actor.anonymous(channel),
        status=401,
        payload={
            "reason": reason,
            "method": method,
            "path": path,
            "client": client,
            # The first characters only, like `keys list` shows: enough to correlate,
            # useless to an attacker.
            "key_prefix": presented_prefix,
            "key_id": key.key_id if key else None,
            "key_owner": key.email if key else None,
        },
    )
    try:
        await trail.record(db, entry)
    except Exception:
        log.exception("could not audit a failed authentication (%s %s)", method, path)
