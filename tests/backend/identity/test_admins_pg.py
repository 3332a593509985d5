"""Two admins demoting each other at the same moment on PostgreSQL: one admin remains.

Each change runs in its own transaction, as two API processes would run them
(tests/conftest.py: demote_each_other). The first holds the admins lock until it
commits; the second waits for it, then finds its own actor demoted and is refused, so
the console keeps an admin. tests/backend/api/test_users_api.py does the same on SQLite.
"""

from __future__ import annotations

import pytest

from backend.audit.chain import ChainKey
from backend.audit.writer import AuditTrail
from backend.db.session import Database
from backend.errors import Forbidden
from backend.guard.policy import PiiGuard
from tests.conftest import demote_each_other

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def test_two_admins_demoting_each_other_leave_one_admin(db: Database) -> None:
    trail = AuditTrail(ChainKey(b"integration-test-secret-key-0123"), "redacted", PiiGuard())
    refused, roles = await demote_each_other(db, trail)
    assert isinstance(refused, Forbidden) and refused.code == "admin_required"
    assert roles == {"ana@example.com": ["admin"], "bob@example.com": ["user"]}
