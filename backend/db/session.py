"""The one place database engines and sessions are made, and the schema migrated.

Services receive an AsyncSession and only flush; the request or task boundary that
opened the session commits (see :func:`Database.transaction`).

Writers bring the schema to this release's head with :func:`migrate`; a reader that must
not change the database checks it with :func:`require_current_schema` instead, which
raises :class:`SchemaNotCurrent` (503 ``schema_not_current``) when the schema is
missing, behind or from a release this one does not know.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from backend.errors import ServiceUnavailable
from backend.settings import to_sync_url

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Database:
    def __init__(
        self, url: str, *, clock: Callable[[], float] = time.monotonic, busy_timeout_s: float = 30.0
    ) -> None:
        """``clock``: when pooled connections were last used (tests move it).
        ``busy_timeout_s``: SQLite only, how long a statement waits for another writer's
        lock before it fails (then the request gets 503 database_unavailable)."""
        self.url = url
        # A request opens a few short sessions (conversation, audit outbox, retrieval), and
        # a loaded API process has dozens of requests in flight: with SQLAlchemy's default
        # 5 pooled + 10 overflow connections, overflow ones were opened and closed per
        # request under load (psycopg connect/close showed in the load profile).
        kwargs: dict[str, object] = {"pool_size": 10, "max_overflow": 20}
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": busy_timeout_s}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            _ping_when_idle(self.engine.sync_engine, PING_AFTER_IDLE_S, clock)
        # Same pool; each statement commits by itself: no BEGIN / ROLLBACK around a read.
        # (Not on SQLite: there the driver's isolation reset at check-in costs more than
        # the transaction it saves.)
        self._autocommit = (
            self.engine
            if url.startswith("sqlite")
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # psycopg: a batch of statements and its COMMIT can go as one pipeline
        # (backend/db/group_commit.py).
        self.pipelines = self.engine.dialect.driver == "psycopg"

    def session(self) -> AsyncSession:
        return self._sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection in autocommit, for a single-statement read on a hot path
        (one round trip, where a session adds BEGIN and ROLLBACK around it). Several
        statements that must agree with each other belong in :meth:`session`."""
        async with self._autocommit.connect() as conn:
            yield conn

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


# A pooled connection used this recently is handed out without a liveness check; one
# idle longer is pinged first (a dead one is replaced). SQLAlchemy's pool_pre_ping pings
# on every checkout: a round trip that cost ~0.2 CPU-ms per checkout under load. The
# same rule as HikariCP's "alive bypass window", with a longer window.
PING_AFTER_IDLE_S = 2.0
_LAST_USED = "expertgate_last_used"


def _ping_when_idle(engine: Engine, after_s: float, clock: Callable[[], float]) -> None:
    dialect = engine.dialect
    driver_error: type[Exception] = dialect.loaded_dbapi.Error

    def connected(_dbapi_conn: object, record: Any) -> None:
        record.info[_LAST_USED] = clock()

    def checkout(dbapi_conn: DBAPIConnection, record: Any, _proxy: object) -> None:
        if clock() - record.info.get(_LAST_USED, 0.0) < after_s:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except driver_error as exc:  # the pool discards this connection and checks out another
            raise DisconnectionError(f"pooled connection failed its liveness check: {exc}") from exc

    def checkin(_dbapi_conn: object, record: Any) -> None:
        record.info[_LAST_USED] = clock()

    event.listen(engine, "connect", connected)
    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", to_sync_url(url).replace("%", "%%"))
    return cfg


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite ``url``; None for another database or an in-memory one."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return Path(path) if path and path != ":memory:" else None


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` with Alembic (synchronous)."""
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


class SchemaNotCurrent(ServiceUnavailable):
    """The database's schema is not this release's head: missing, behind, or unknown.

    The message names the database (password hidden) and what to run.
    """

    code = "schema_not_current"


def _current_revisions(conn: Connection) -> set[str]:
    # Reads alembic_version if it exists; creates nothing (only upgrade and stamp do).
    return set(MigrationContext.configure(conn).get_current_heads())


async def require_current_schema(db: Database) -> None:
    """Return if ``db`` is at this release's head revision(s), else raise SchemaNotCurrent.

    Reads only: no migration, no DDL, and a SQLite file that does not exist is not
    created. Connection errors propagate as the driver raises them.
    """
    script = ScriptDirectory.from_config(alembic_config(db.url))
    heads = set(script.get_heads())
    path = _sqlite_file(db.url)
    if path is not None and not path.exists():
        current: set[str] = set()
    else:
        async with db.engine.connect() as conn:
            current = await conn.run_sync(_current_revisions)
    if current == heads:
        return
    where = make_url(db.url).render_as_string(hide_password=True)
    need = ", ".join(sorted(heads))
    if not current:
        raise SchemaNotCurrent(
            f"the database at {where} has no expertgate schema (revision {need} needed); "
            "this command only reads: run `expertgate migrate` first"
        )
    known = {rev.revision for rev in script.walk_revisions()}
    at = ", ".join(sorted(current))
    if current <= known:
        raise SchemaNotCurrent(
            f"the database at {where} is at schema revision {at}, behind this release's {need}; "
            "this command only reads: run `expertgate migrate` first"
        )
    raise SchemaNotCurrent(
        f"the database at {where} is at schema revision {at}, which this release does not know "
        f"(its newest is {need}): a newer expertgate migrated it; run that release, or upgrade this one"
    )


__all__ = ["Database", "Engine", "SchemaNotCurrent", "migrate", "require_current_schema"]
