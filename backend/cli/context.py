"""What an `expertgate` command opens: the database, the audit trail and its operator.

Every command that touches the database gets them from :func:`open_command`, once::

    async with open_command(settings, Access.WRITE) as cmd:
        async with cmd.db.transaction() as session:
            await KeyAdmin(session, cmd.trail).revoke(cmd.actor, key_id)

``Access.WRITE`` creates the data directory and migrates the database to this
release's head first (what ``expertgate migrate`` does, and what writing commands have
always done). ``Access.READ`` opens the database as it is: a command that only reads
(``audit verify``, ``keys list``, ...) never changes the schema (an export still
appends its own audit event, as through the API), and stops with
:class:`backend.db.session.SchemaNotCurrent` (a message naming ``expertgate migrate``)
when the schema is missing or behind. The database's engine is disposed when the block
exits, however it exits.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum

from backend.audit.types import Actor
from backend.audit.writer import AuditTrail, build_audit_trail
from backend.db.session import Database, migrate, require_current_schema
from backend.guard.policy import PiiGuard
from backend.settings import Settings


class Access(Enum):
    """What a command does to the database."""

    READ = "read"  # reads (and may audit that it did): the schema must be current already
    WRITE = "write"  # writes: migrated to head first


class CommandContext:
    """One command's settings, database, audit trail and operator (see the module)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._trail: AuditTrail | None = None

    @property
    def actor(self) -> Actor:
        """The operator at the shell (trusted by shell access), as every CLI event names it."""
        return Actor.cli(getpass.getuser())

    @property
    def trail(self) -> AuditTrail:
        """The audit trail, built on first use (it reads, or on a first start creates,
        the audit key file). Not deferred: a command's events are chained in its own
        transaction. Raises SettingsError for a bad key setting."""
        if self._trail is None:
            self._trail = build_audit_trail(self.settings, PiiGuard())
        return self._trail


def prepare_database(settings: Settings) -> None:
    """Create the data directory and migrate the database to head (synchronous)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.resolved_database_url)


@asynccontextmanager
async def open_command(settings: Settings, access: Access) -> AsyncIterator[CommandContext]:
    """The command's :class:`CommandContext`, its database closed on exit.

    Raises SchemaNotCurrent (READ, before anything is yielded) when the schema is not
    this release's head; migration errors propagate from Alembic (WRITE).
    """
    if access is Access.WRITE:
        await asyncio.to_thread(prepare_database, settings)
    db = Database(settings.resolved_database_url, busy_timeout_s=settings.database_busy_timeout_s)
    try:
        if access is Access.READ:
            await require_current_schema(db)
        yield CommandContext(settings, db)
    finally:
        await db.dispose()
