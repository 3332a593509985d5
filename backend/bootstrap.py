"""First start of an empty database: one admin user, its key written to data/admin.key."""

from __future__ import annotations

import logging
import os

from backend.audit.types import Actor
from backend.audit.writer import AuditTrail
from backend.db.session import Database
from backend.identity.admin import KeyAdmin
from backend.identity.service import IdentityService
from backend.settings import Settings

log = logging.getLogger(__name__)


async def bootstrap_admin(db: Database, settings: Settings, audit: AuditTrail) -> None:
    key_file = settings.data_dir / "admin.key"
    async with db.transaction() as session:
        identity = IdentityService(session)
        if await identity.count_users() > 0:
            if key_file.exists():
                log.info("admin API key: see %s", key_file.resolve())
            return
        issued = await KeyAdmin(session, audit).create(
            Actor.system(), settings.bootstrap_admin_email, role="admin", name="bootstrap"
        )
    # Written after the commit: a key file never names a key that was rolled back.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(issued.secret + "\n")
    log.info("created admin user %s; its API key is in %s", issued.email, key_file.resolve())
