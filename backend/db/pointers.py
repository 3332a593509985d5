"""Version pointers in SQL (artifact_pointers): what every API replica follows in scale-out.

The router's ArtifactStore and the retrieval IndexStore write a version's files to
shared storage (complete, renamed into place) and only then call :meth:`SqlPointers.set`;
replicas poll :meth:`SqlPointers.get` (one primary-key read) and load the version after
checking the recorded checksum. So the database, not a file on a possibly lagging
network volume, says which version is live, and it is never ahead of complete files.

The stores are synchronous and called from worker threads, hence a synchronous engine:
one per process and database, shared by every store, keeping one connection for the
polls. (Each API process polls every index domain every ``knowledge_reload_s``; without
a pool each poll opened a PostgreSQL connection, a server process start, ~4 a second
under load in the bench: docs/load.md.)
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from backend.db.models import ArtifactPointer, utcnow
from backend.settings import to_sync_url

ROUTER = "router"
INDEX = "index"


def default_publisher() -> str:
    """Who publishes from this process: ``host:pid`` (recorded in published_by)."""
    return f"{socket.gethostname()}:{os.getpid()}"


_ENGINES: dict[tuple[int, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(url: str) -> Engine:
    """The process's engine for ``url`` (a forked child makes its own: a connection must
    not be shared across processes). PostgreSQL: one pooled connection, checked before
    use (polls are seconds apart) and a few more for concurrent polls; SQLite opens a
    file, nothing worth pooling."""
    key = (os.getpid(), url)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            sync_url = to_sync_url(url)
            if sync_url.startswith("sqlite"):
                engine = create_engine(sync_url, poolclass=NullPool)
            else:
                engine = create_engine(sync_url, pool_size=1, max_overflow=3, pool_pre_ping=True)
            _ENGINES[key] = engine
        return engine


class SqlPointers:
    """The pointers of one artifact ``kind`` (``router`` or ``index``) at database ``url``.

    Satisfies router.artifacts.VersionPointers and retrieval.store.VersionPointers.
    Errors are SQLAlchemy's (the caller decides whether a failed poll matters).
    """

    def __init__(self, url: str, kind: str, published_by: str | None = None) -> None:
        self.kind = kind
        self.published_by = published_by or default_publisher()
        self._engine = _engine(url)

    def get(self, name: str) -> tuple[str, str | None] | None:
        """(version, checksum) that ``name`` points at, or None when nothing is published."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(ArtifactPointer.version, ArtifactPointer.checksum).where(
                    ArtifactPointer.kind == self.kind, ArtifactPointer.name == name
                )
            ).first()
        if row is None or row[0] is None:
            return None
        return row[0], row[1]

    def set(self, name: str, version: str | None, path: Path | None, checksum: str | None) -> None:
        """Point ``name`` at ``version`` (one upsert, committed before returning)."""
        values = {
            "version": version,
            "path": str(path) if path is not None else None,
            "checksum": checksum,
            "published_at": utcnow(),
            "published_by": self.published_by[:200],
        }
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(ArtifactPointer).values(kind=self.kind, name=name, **values)
        statement = statement.on_conflict_do_update(index_elements=["kind", "name"], set_=values)
        with self._engine.begin() as conn:
            conn.execute(statement)
