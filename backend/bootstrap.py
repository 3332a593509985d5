"""First start of an empty database: one admin user, its key written to data/admin.key."""

from __future__ import annotations

import logging
import os

from backend.db.session import Database
from backend.identity.service import IdentityService
from backend.settings import Settings

log = logging.getLogger(__name__)


async def bootstrap_admin(db: Database, settings: Settings) -> None:
    key_file = settings.data_dir / "admin.key"
    async with db.transaction() as session:
        identity = IdentityService(session)
        if await identity.count_users() > 0:
            if key_file.exists():
                log.info("admin API key: see %s", key_file.resolve())
            return
        user = await identity.ensure_user(settings.bootstrap_admin_email, roles={"admin"})
        issued = await identity.create_key(user, name="bootstrap")
    # Written after the commit: a key file never names a key that was rolled back.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(issued.secret + "\n")
    log.info("created admin user %s; its API key is in %s", user.email, key_file.resolve())
