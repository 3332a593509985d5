"""Errors of the audit package, as rows of the error table (they are AppErrors).

AppError
 └── AuditExportFailed   500  audit_export_failed  (raised before any byte is sent)

Corrupted rows are not errors: readers mark them (``unreadable``) and verify reports
them (verify.KINDS). A missing chain head stops chaining, not reading (api.py).
"""

from __future__ import annotations

from backend.errors import AppError


class AuditExportFailed(AppError):
    status, code, type = 500, "audit_export_failed", "server_error"
