"""Ingestion on a real PostgreSQL database through the real `expertgate ingest` CLI.

Checks that SQL and the published index stay consistent through bad files, no-op
re-runs, changes, deletions, a corrupted index (rebuilt from SQL) and hot reload.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import psycopg
import pytest

from backend.cli.main import main
from backend.db.session import Database
from backend.knowledge.service import DomainQuery
from backend.knowledge.types import FileInput, JobView
from backend.knowledge.wiring import Knowledge, build_knowledge
from backend.settings import Settings
from experts.registry import ExpertRegistry
from retrieval.embedding import bundled_embedder
from retrieval.store import IndexStore
from tests.conftest import write_experts_yaml
from tests.fakes.documents import make_pdf

pytestmark = pytest.mark.integration

GOOD = {
    "handbook/leave.md": b"# Leave\n\n## Annual leave\n\nEveryone gets 25 days of annual leave.\n",
    "handbook/expenses.txt": b"Expenses\n\nReceipts are needed for every claim over USD 20.\n",
    "handbook/travel.html": b"<h1>Travel</h1><p>Book trains for trips under four hours.</p>",
    "handbook/contract.pdf": make_pdf([["Signed contract", "Payment is due in 30 days."]]),
}
BAD = {
    "handbook/broken.pdf": (b"%PDF-1.7\n%%garbage", "corrupt_document"),
    "handbook/empty.md": (b"", "empty_document"),
    "handbook/latin1.txt": ("Caf\u00e9\n\nna\u00efve".encode("latin-1"), "bad_encoding"),
    "handbook/photo.png": (b"\x89PNG\r\n", "unsupported_type"),
}


@pytest.fixture
def env(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    docs = tmp_path / "docs"
    for name, data in GOOD.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_bytes(data)
    for name, (data, _) in BAD.items():
        (docs / name).write_bytes(data)
    # 50 MB: refused from its size alone, before it is read.
    with open(docs / "handbook" / "huge.md", "wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    (docs / "handbook" / "zz-copy-of-leave.md").write_bytes(GOOD["handbook/leave.md"])
    outside = tmp_path / "outside.md"
    outside.write_text("# Secret\n\nnot in the roots\n")
    (docs / "handbook" / "link.md").symlink_to(outside)
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXPERTGATE_DATABASE_URL", pg_url)
    monkeypatch.setenv(
        "EXPERTGATE_EXPERTS_FILE",
        str(write_experts_yaml(tmp_path / "experts.yaml", "http://127.0.0.1:9/v1")),
    )
    monkeypatch.setenv("EXPERTGATE_INGEST_ROOTS", f'["{docs}"]')
    return docs


def sql_chunks(pg_url: str, domain: str) -> set[int]:
    with psycopg.connect(pg_url) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM chunks WHERE domain = %s", (domain,))}


def index_ids(data_dir: Path, domain: str) -> tuple[str, set[int]]:
    loaded = IndexStore(data_dir / "indexes").load(domain, embedder="all-MiniLM-L6-v2", dim=384)
    return loaded.manifest.version, set(loaded.index.chunk_ids.tolist())


def test_cli_ingestion_keeps_sql_and_index_consistent(
    env: Path, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert main(["ingest", "--domain", "legal", "--groups", "legal-team", str(env / "handbook")]) == 1
    out = capsys.readouterr().out
    for name, (_, code) in BAD.items():
        assert f"{name}  {code}:" in out or (code == "unsupported_type" and name in out)
    assert "huge.md  file_too_large" in out
    assert "outside_allowed_roots" in out and "link.md" in out
    assert "zz-copy-of-leave.md  duplicate_content: same content as handbook/leave.md" in out
    with psycopg.connect(pg_url) as conn:
        docs = dict(conn.execute("SELECT source, chunk_count FROM documents").fetchall())
        groups = {tuple(r[0]) for r in conn.execute("SELECT groups FROM documents")}
        job = conn.execute("SELECT status, total_files, done_files FROM ingest_jobs").fetchone()
    assert set(docs) == set(GOOD)
    assert all(n >= 1 for n in docs.values())
    assert groups == {("legal-team",)}
    assert job == ("partial", len(GOOD) + len(BAD) + 3, len(GOOD) + len(BAD) + 3)
    version, ids = index_ids(data_dir, "legal")
    assert ids == sql_chunks(pg_url, "legal") and len(ids) == sum(docs.values())

    # Unchanged: a no-op that publishes nothing new.
    main(
        [
            "ingest",
            "--domain",
            "legal",
            "--groups",
            "legal-team",
            str(env / "handbook" / "leave.md"),
        ]
    )
    assert "1 unchanged" in capsys.readouterr().out
    assert index_ids(data_dir, "legal")[0] == version

    # Changed content replaces the chunks; a deleted file takes its chunks with it.
    (env / "handbook" / "leave.md").write_bytes(GOOD["handbook/leave.md"] + b"\nCarry-over is 5 days.\n")
    assert (
        main(
            [
                "ingest",
                "--domain",
                "legal",
                "--groups",
                "legal-team",
                str(env / "handbook" / "leave.md"),
            ]
        )
        == 0
    )
    assert "updated" in capsys.readouterr().out
    (env / "handbook" / "expenses.txt").unlink()
    assert main(["ingest", "--delete", str(env / "handbook" / "expenses.txt")]) == 0
    assert "deleted 1 document(s)" in capsys.readouterr().out
    version2, ids = index_ids(data_dir, "legal")
    assert version2 != version and ids == sql_chunks(pg_url, "legal")
    with psycopg.connect(pg_url) as conn:
        texts = [r[0] for r in conn.execute("SELECT text FROM chunks")]
        sources = {r[0] for r in conn.execute("SELECT source FROM documents")}
    assert any("Carry-over is 5 days" in t for t in texts)
    assert "handbook/expenses.txt" not in sources
    assert main(["ingest", "--delete", str(env / "handbook" / "nothing.md")]) == 1


def test_corrupt_index_is_rebuilt_and_new_versions_hot_reload(env: Path, pg_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert main(["ingest", "--domain", "legal", str(env / "handbook" / "leave.md")]) == 0
    version, _ = index_ids(data_dir, "legal")
    dense = data_dir / "indexes" / "legal" / "versions" / version / "dense.faiss"
    dense.write_bytes(b"\0" * dense.stat().st_size)
    settings = Settings(
        data_dir=data_dir,
        database_url=pg_url,
        experts_file=Path(os.environ["EXPERTGATE_EXPERTS_FILE"]),
        knowledge_reload_s=0,
    )
    registry = ExpertRegistry.from_yaml(settings.experts_file)
    embedder = bundled_embedder(lazy=True)

    async def scenario() -> None:
        db = Database(settings.resolved_database_url)
        try:
            reader = build_knowledge(settings, db, registry, embedder).service
            writer = build_knowledge(settings, db, registry, embedder)
            loaded = await reader.ensure("legal")  # corrupt -> rebuilt from SQL
            assert loaded.manifest.version != version
            assert set(loaded.index.chunk_ids.tolist()) == sql_chunks(pg_url, "legal")
            hits = await reader.retrieve("how many days of annual leave", _targets(), frozenset(), 3)
            assert hits.passages and hits.passages[0].source == "handbook/leave.md"
            assert "25 days" in hits.passages[0].text
            # Another process (here: another service instance) publishes; the reader
            # picks the new version up on its next use, without a restart.
            job = await _ingest(writer, env / "handbook" / "travel.html")
            assert job.index_version != loaded.manifest.version
            hits = await reader.retrieve("book trains for short trips", _targets(), frozenset(), 3)
            assert reader.loaded_version("legal") == job.index_version
            assert hits.passages[0].source == "handbook/travel.html"
        finally:
            await db.dispose()

    asyncio.run(scenario())


def _targets() -> list[DomainQuery]:
    return [DomainQuery("legal")]


async def _ingest(knowledge: Knowledge, path: Path) -> JobView:
    source = path.relative_to(path.parent.parent).as_posix()
    async with knowledge.db.transaction() as session:
        job_id = await knowledge.jobs.submit_files(session, "legal", [FileInput(source, path, frozenset())])
    return await knowledge.jobs.run(job_id)
