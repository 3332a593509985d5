"""KnowledgeService on SQLite with a hermetic embedder: rebuilds, staleness, ACL re-checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from backend.db.models import Document, DocumentChunk
from backend.db.session import Database, migrate
from backend.knowledge.indexer import IndexPublisher
from backend.knowledge.service import DomainQuery, KnowledgeService
from backend.knowledge.types import FileInput, FileStatus
from backend.knowledge.wiring import Knowledge, build_knowledge
from backend.settings import Settings
from experts.registry import ExpertRegistry
from tests.fakes.embedder import HashEmbedder

LEGAL = [DomainQuery("legal")]
TEAM = frozenset({"legal-team"})


@pytest.fixture
async def kb(tmp_path: Path) -> AsyncIterator[Knowledge]:
    settings = Settings(data_dir=tmp_path / "data", knowledge_reload_s=0)
    settings.data_dir.mkdir()
    migrate(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    registry = ExpertRegistry.from_yaml(settings.experts_file)
    yield build_knowledge(settings, db, registry, HashEmbedder())
    await db.dispose()


async def ingest(kb: Knowledge, tmp_path: Path, files: dict[str, str], groups: frozenset[str] = frozenset()) -> None:
    inputs = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        inputs.append(FileInput(name, path, groups))
    async with kb.db.transaction() as session:
        job_id = await kb.jobs.submit_files(session, "legal", inputs)
    view = await kb.jobs.run(job_id)
    assert all(r.status is not FileStatus.FAILED for r in view.results), view.results


def build_knowledge_like(kb: Knowledge) -> KnowledgeService:
    """A second KnowledgeService over the same database and store (another process)."""
    return KnowledgeService(kb.db, kb.publisher, HashEmbedder(), ["legal"], reload_s=0)


async def sources(kb: Knowledge, query: str, groups: frozenset[str] = frozenset()) -> list[str]:
    result = await kb.service.retrieve(query, LEGAL, groups, 5)
    return [p.source for p in result.passages]


async def test_missing_or_corrupt_index_is_rebuilt_from_sql(kb: Knowledge, tmp_path: Path) -> None:
    await ingest(kb, tmp_path, {"leave.md": "# Leave\n\nEveryone gets 25 days of annual leave.\n"})
    store = kb.publisher.store
    first = store.current_version("legal")
    assert first is not None
    (store.root / "legal" / "CURRENT").unlink()
    fresh = build_knowledge_like(kb)
    loaded = await fresh.ensure("legal")
    assert loaded.manifest.version != first and len(loaded.index) == 1
    # Corrupt the new version's files: the next process rebuilds again.
    version_dir = store.root / "legal" / "versions" / loaded.manifest.version
    (version_dir / "rows.npy").write_bytes(b"garbage")
    again = await build_knowledge_like(kb).ensure("legal")
    assert again.manifest.version not in (first, loaded.manifest.version)
    assert await sources(kb, "annual leave days") == ["leave.md"]


async def test_stale_index_never_serves_deleted_or_restricted_chunks(kb: Knowledge, tmp_path: Path) -> None:
    await ingest(kb, tmp_path, {"cap.md": "# Cap\n\nThe liability cap is twelve months of fees.\n"})
    await ingest(kb, tmp_path, {"secret.md": "# Secret\n\nThe liability cap fallback is 24 months.\n"}, TEAM)
    assert set(await sources(kb, "liability cap", TEAM)) == {"cap.md", "secret.md"}
    assert await sources(kb, "liability cap") == ["cap.md"]
    # Change SQL behind the index's back (no publish): tighten one document's groups and
    # delete another. The loaded index is now stale, yet nothing leaks.
    async with kb.db.transaction() as session:
        await session.execute(update(Document).where(Document.source == "cap.md").values(groups=["board"]))
        secret_id = await session.scalar(select(Document.id).where(Document.source == "secret.md"))
        await session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == secret_id))
        await session.execute(delete(Document).where(Document.id == secret_id))
    assert await sources(kb, "liability cap", TEAM) == []
    assert await sources(kb, "liability cap", frozenset({"board"})) == ["cap.md"]
    # A restarted process notices the index is behind SQL and rebuilds it.
    rebuilt = await build_knowledge_like(kb).ensure("legal")
    assert len(rebuilt.index) == 1


async def test_groups_change_alone_is_a_regroup_and_republishes(kb: Knowledge, tmp_path: Path) -> None:
    text = {"cap.md": "# Cap\n\nThe liability cap is twelve months of fees.\n"}
    await ingest(kb, tmp_path, text)
    before = kb.publisher.store.current_version("legal")
    inputs = [FileInput("cap.md", tmp_path / "cap.md", TEAM)]
    async with kb.db.transaction() as session:
        job_id = await kb.jobs.submit_files(session, "legal", inputs)
    view = await kb.jobs.run(job_id)
    assert view.results[0].status is FileStatus.REGROUPED
    assert view.index_version != before
    assert await sources(kb, "liability cap") == []
    assert await sources(kb, "liability cap", TEAM) == ["cap.md"]


async def test_processes_starting_together_on_a_missing_index_build_it_once(kb: Knowledge, tmp_path: Path) -> None:
    await ingest(kb, tmp_path, {"leave.md": "# Leave\n\nEveryone gets 25 days of annual leave.\n"})
    store = kb.publisher.store
    before = store.versions("legal")
    (store.root / "legal" / "CURRENT").unlink()  # as on a fresh index volume
    # Two API processes: each its own publisher (in-process lock), one store (flock).
    services = [
        KnowledgeService(
            kb.db, IndexPublisher(kb.db, store, HashEmbedder(), kb.publisher.config), HashEmbedder(), ["legal"]
        )
        for _ in range(2)
    ]
    first, second = await asyncio.gather(*(s.ensure("legal") for s in services))
    assert first.manifest.version == second.manifest.version
    assert len(store.versions("legal")) == len(before) + 1  # one new version, not two
    assert len(first.index) == len(second.index) == 1
