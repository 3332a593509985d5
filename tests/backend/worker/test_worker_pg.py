"""A real Celery worker process on the local Redis (db 14) against a real PostgreSQL.

The test enqueues tasks from this process (the producer side an API replica uses) and
observes their effect in SQL, written by the worker process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backend import taskqueue
from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import build_audit_trail
from backend.db.session import Database, migrate
from backend.guard.policy import PiiGuard
from backend.settings import Settings
from backend.worker.app import make_celery
from tests.services import dedicated_redis
from tests.support.processes import celery_worker

pytestmark = pytest.mark.integration

BROKER = os.environ.get("EXPERTGATE_TEST_CELERY_REDIS", "redis://127.0.0.1:6379/14")


@pytest.fixture
def broker() -> str:
    return dedicated_redis(BROKER)


@pytest.fixture
def settings(pg_url: str, broker: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path, database_url=pg_url, redis_url=broker, audit_text="full", ingest_roots=(tmp_path,)
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    env = {
        "EXPERTGATE_DATA_DIR": str(settings.data_dir),
        "EXPERTGATE_DATABASE_URL": str(settings.database_url),
        "EXPERTGATE_REDIS_URL": str(settings.redis_url),
        "EXPERTGATE_AUDIT_TEXT": "full",
        "EXPERTGATE_INGEST_ROOTS": f'["{settings.data_dir}"]',
    }
    with celery_worker(env, tmp_path / "worker.log", "egtest", unset=("EXPERTGATE_AUDIT_RETENTION_DAYS",)) as log:
        yield log


def _old_event_with_text(settings: Settings) -> int:
    """Record one event with prompt text and backdate it 90 days; return its seq."""
    url = settings.resolved_database_url
    migrate(url)
    trail = build_audit_trail(settings, PiiGuard())

    async def record() -> None:
        db = Database(url)
        try:
            await trail.record(
                db,
                AuditEntry(
                    action="chat.completion",
                    outcome=Outcome.OK,
                    actor=Actor.system(),
                    request_id="old-question",
                    prompt="the old question",
                    answer="the old answer",
                ),
            )
        finally:
            await db.dispose()

    asyncio.run(record())  # a CLI-style trail: chained before it returns
    with psycopg.connect(str(settings.database_url), autocommit=True) as conn:
        row = conn.execute(
            "UPDATE audit_events SET ts = ts - interval '90 days' WHERE request_id = 'old-question' RETURNING seq"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _result(app: Any, name: str, worker_log: Path, **kwargs: Any) -> Any:
    async_result = app.tasks[name].apply_async(kwargs=kwargs)
    try:
        return async_result, async_result.get(timeout=120, propagate=False)
    except Exception:
        print(worker_log.read_text(errors="replace")[-4000:])
        raise


def test_worker_runs_retention_and_fails_expected_errors_once(settings: Settings, worker: Path) -> None:
    seq = _old_event_with_text(settings)
    app = make_celery(settings)  # the producer side: same factory, same Settings

    handle, result = _result(app, taskqueue.RETENTION, worker, days=30)
    assert handle.state == "SUCCESS", worker.read_text(errors="replace")[-4000:]
    assert result["purged"] == 1 and result["days"] == 30

    with psycopg.connect(str(settings.database_url)) as conn:
        prompt, answer, purged_at = conn.execute(
            "SELECT prompt, answer, content_purged_at FROM audit_events WHERE seq = %s", (seq,)
        ).fetchone()
        actions = [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT action, channel FROM audit_events WHERE action LIKE 'audit.retention%' ORDER BY seq"
            )
        ]
    assert (prompt, answer) == (None, None) and purged_at is not None
    assert actions == [("audit.retention", "system"), ("audit.retention.finished", "system")]

    # No retention period anywhere: an expected error, failed once with its code.
    handle, result = _result(app, taskqueue.RETENTION, worker)
    assert handle.state == "FAILURE"
    assert "invalid_request" in str(result)
    assert (handle.retries or 0) == 0
    app.close()


def _submit_job(settings: Settings, path: Path) -> str:
    from backend.knowledge.types import FileInput
    from backend.knowledge.wiring import build_knowledge
    from experts.registry import ExpertRegistry
    from retrieval.embedding import bundled_embedder

    url = settings.resolved_database_url
    migrate(url)

    async def submit() -> str:
        db = Database(url)
        try:
            knowledge = build_knowledge(
                settings, db, ExpertRegistry.from_yaml(settings.experts_file), bundled_embedder(lazy=True)
            )
            async with db.transaction() as session:
                return await knowledge.jobs.submit_files(
                    session, "legal", [FileInput("legal/nda.md", path, frozenset())]
                )
        finally:
            await db.dispose()

    return asyncio.run(submit())


def test_worker_ingests_a_submitted_job_once(settings: Settings, worker: Path, tmp_path: Path) -> None:
    doc = tmp_path / "nda.md"
    doc.write_text(
        "# Mutual NDA\n\nConfidential information must not be disclosed to third parties for three years "
        "after the effective date. Either party may terminate with thirty days written notice.\n"
    )
    job_id = _submit_job(settings, doc)
    app = make_celery(settings)

    handle, result = _result(app, taskqueue.INGEST, worker, job_id=job_id)
    assert handle.state == "SUCCESS", worker.read_text(errors="replace")[-4000:]
    assert result["status"] == "succeeded" and result["index_version"]

    def counts() -> tuple[str, int, int]:
        with psycopg.connect(str(settings.database_url)) as conn:
            status = conn.execute("SELECT status FROM ingest_jobs WHERE id = %s", (job_id,)).fetchone()[0]
            docs = conn.execute("SELECT count(*) FROM documents WHERE domain = 'legal'").fetchone()[0]
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return status, docs, chunks

    status, docs, chunks = counts()
    assert status == "succeeded" and docs == 1 and chunks >= 1
    # A redelivered message (worker died after the work, before the ack) is a no-op.
    handle, result = _result(app, taskqueue.INGEST, worker, job_id=job_id)
    assert handle.state == "SUCCESS" and result["status"] == "succeeded"
    assert counts() == (status, docs, chunks)
    # An unknown job is an expected error: failed once with its code, not retried.
    handle, result = _result(app, taskqueue.INGEST, worker, job_id="no-such-job")
    assert handle.state == "FAILURE" and "ingest_job_not_found" in str(result)
    assert (handle.retries or 0) == 0
    app.close()
