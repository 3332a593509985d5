"""Ingestion jobs: recorded in ingest_jobs, run by :meth:`IngestJobs.run`.

``submit_*`` create a queued job (flush only; the caller commits, then hands the job
id to a runner). :meth:`IngestJobs.run` is a task boundary: it opens its own
transactions, so the same call serves the inline runner of the embedded default (a
FastAPI background task, or the CLI directly) and a Celery task later.

A run: mark running -> ingest the batch and record the results in one transaction ->
publish a new index version when anything changed (or the index is behind SQL) ->
record the version. Uploaded files are staged under ``<data_dir>/uploads/<job id>/``
until their job has run.

Runners may die (a worker killed mid-job) and messages may be delivered twice. On
PostgreSQL the ingest transaction holds an advisory lock on its job, released by
commit, rollback or a dropped connection. A run that finds its job ``running`` takes
over only when that lock is free (the previous runner is gone; its transaction rolled
back, so nothing of it is in SQL), and the ingest step re-checks the status under the
lock, so two runners never ingest one job. Documents are keyed by content hash, so
files stored by an earlier, committed run come out ``unchanged``. On SQLite, which
has no such locks, a job records its holder (``host:pid`` of the process that submitted
or runs it, with its start time) and a ``running`` job is taken over when that process
is gone from this host (SQLite is local to one host). Whichever way a runner found a job
free, it claims it with an UPDATE that matches only the state it read, so of two
processes reading it at once one runs it.

The inline runner is a background task of the API process: a job it had queued or was
running when the process stopped (a restart, a crash) would stay so for good. An API
process running jobs inline therefore resumes, at start, every job whose holder is gone
(:meth:`IngestJobs.resume_orphans`); a run cancelled mid-ingest keeps its staged uploads
for that.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import anyio
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.types import Actor
from backend.audit.writer import AuditTrail
from backend.db.models import IngestJob, utcnow
from backend.db.session import Database
from backend.errors import BadRequest, NotFound
from backend.knowledge.documents import DocumentService, document_view
from backend.knowledge.ingest import IngestionService, IngestLimits, Progress
from backend.knowledge.quarantine import QuarantineService
from backend.knowledge.safety import DocumentScanner
from backend.knowledge.service import KnowledgeService
from backend.knowledge.types import DocumentView, FileInput, FileResult, FileStatus, JobStatus, JobView
from retrieval.embedding import Embedder

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
UPLOAD_PREFIX = "upload/"
# The first key of PostgreSQL's two-key advisory locks taken on ingest jobs ("EG").
_LOCK_SPACE = 0x4547


def job_view(job: IngestJob) -> JobView:
    return JobView(
        id=job.id,
        domain=job.domain,
        status=JobStatus(job.status),
        groups=tuple(job.groups),
        total_files=job.total_files,
        done_files=job.done_files,
        results=tuple(FileResult.from_json(r) for r in job.results),
        error=job.error,
        index_version=job.index_version,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def this_process() -> str:
    """``host:pid:start``: this process as the holder of a job (``start``: when it
    started, in clock ticks since boot, so that a later process given the same pid, as a
    restarted container's entrypoint always is, is not taken for it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def _started(pid: int) -> str:
    """When process ``pid`` started (field 22 of /proc/PID/stat), or "" if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name (field 2) is in parentheses and may hold spaces: split after it.
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def holder_gone(holder: str | None) -> bool:
    """Whether the process that ``holder`` (:func:`this_process` of it) names is known to
    have ended: it ran on this host, and no process has its pid, or the one that has it
    started at another time. A holder on another host, or none recorded (jobs from
    before holders were kept), is not known to be gone."""
    host, _, rest = (holder or "").partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if start and _started(int(pid)) not in ("", start):
        return True  # the pid was given to another process since
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def safe_filename(name: str) -> str:
    """The base name of an uploaded file, reduced to a safe character set.

    Raises BadRequest when nothing usable is left ("", ".", "..").
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")[:200]
    if not cleaned or cleaned.startswith("."):
        raise BadRequest(f"unusable file name {name!r}", code="invalid_filename", param="files")
    return cleaned


class IngestJobs:
    def __init__(
        self,
        db: Database,
        knowledge: KnowledgeService,
        embedder: Embedder,
        limits: IngestLimits,
        staging_dir: Path,
        *,
        scanner: DocumentScanner | None = None,
    ) -> None:
        self._db = db
        self._knowledge = knowledge
        self._embedder = embedder
        self._limits = limits
        self._staging = staging_dir
        self._scanner = scanner
        self._domain_locks: dict[str, asyncio.Lock] = {}

    @property
    def domains(self) -> tuple[str, ...]:
        return self._knowledge.domains

    def check_domain(self, domain: str) -> None:
        """Raises BadRequest (unknown_domain) unless an expert uses an index ``domain``."""
        if domain not in self.domains:
            known = ", ".join(self.domains) or "(none)"
            raise BadRequest(
                f"unknown knowledge domain {domain!r}; known: {known}",
                code="unknown_domain",
                param="domain",
            )

    # -- creating jobs (services: flush only) ------------------------------------------------
    async def submit_files(
        self,
        session: AsyncSession,
        domain: str,
        inputs: Sequence[FileInput],
        *,
        refused: Sequence[FileResult] = (),
        groups: frozenset[str] = frozenset(),
        user_id: int | None = None,
    ) -> str:
        """A queued job over files already on disk (CLI). ``refused`` are pre-recorded."""
        self.check_domain(domain)
        job = IngestJob(
            id=str(uuid.uuid4()),
            domain=domain,
            status=str(JobStatus.QUEUED),
            groups=sorted(groups),
            inputs=[_input_json(i) for i in inputs],
            total_files=len(inputs) + len(refused),
            done_files=len(refused),
            results=[r.to_json() for r in refused],
            submitted_by=user_id,
            created_at=utcnow(),
            holder=this_process(),
        )
        session.add(job)
        await session.flush()
        return job.id

    async def submit_uploads(
        self,
        session: AsyncSession,
        domain: str,
        files: Sequence[tuple[str, bytes]],
        *,
        groups: frozenset[str],
        user_id: int | None,
    ) -> str:
        """Stage uploaded (name, bytes) pairs and create a queued job for them.

        Sources are ``upload/<safe name>``; two uploads with the same name in one request
        are refused (BadRequest) rather than silently overwritten.
        """
        self.check_domain(domain)
        if not files:
            raise BadRequest("no files were uploaded", code="no_files", param="files")
        names = [safe_filename(name) for name, _ in files]
        if len(set(names)) != len(names):
            raise BadRequest("two uploaded files have the same name", code="duplicate_upload")
        job_id = str(uuid.uuid4())
        paths = await anyio.to_thread.run_sync(self._stage, job_id, names, [d for _, d in files])
        inputs = [FileInput(UPLOAD_PREFIX + n, p, groups) for n, p in zip(names, paths, strict=True)]
        job = IngestJob(
            id=job_id,
            domain=domain,
            status=str(JobStatus.QUEUED),
            groups=sorted(groups),
            inputs=[_input_json(i) for i in inputs],
            total_files=len(inputs),
            done_files=0,
            results=[],
            submitted_by=user_id,
            created_at=utcnow(),
            holder=this_process(),
        )
        session.add(job)
        await session.flush()
        return job_id

    def _stage(self, job_id: str, names: Sequence[str], contents: Sequence[bytes]) -> list[Path]:
        folder = self._staging / job_id
        folder.mkdir(parents=True, exist_ok=False)
        paths = [folder / name for name in names]
        for path, data in zip(paths, contents, strict=True):
            path.write_bytes(data)
        return paths

    async def get(self, session: AsyncSession, job_id: str) -> JobView:
        job = await session.get(IngestJob, job_id)
        if job is None:
            raise NotFound(f"ingest job {job_id!r} does not exist", code="ingest_job_not_found", param="id")
        return job_view(job)

    # -- running (task boundary: own transactions) ------------------------------------------
    async def run(self, job_id: str, progress: Progress | None = None) -> JobView:
        """Run a queued job to the end and return its final state.

        A job that already ran (e.g. a redelivered task), or that a live runner is
        running, is returned as it is; a ``running`` job whose runner died is taken
        over (see the module docstring). Unexpected errors mark the job failed and
        propagate.
        """
        async with self._db.transaction() as session:
            job = await session.get(IngestJob, job_id, with_for_update=True)
            if job is None:
                raise NotFound(f"ingest job {job_id!r} does not exist", code="ingest_job_not_found")
            abandoned = job.status == JobStatus.RUNNING and await _runner_gone(session, job)
            if job.status != JobStatus.QUEUED and not abandoned:
                return job_view(job)
            if not await _claim(session, job):
                await session.refresh(job)
                return job_view(job)
            if abandoned:
                log.warning("ingest job %s: its runner is gone; running it again", job_id)
            domain = job.domain
            inputs = [_input_from_json(raw) for raw in job.inputs]
        tracker = _JobProgress(self._db, job_id, progress)
        # Staged uploads stay until the job's results are recorded or it failed: a run
        # cancelled mid-ingest (a shutdown) leaves the job running, to be resumed from them.
        inputs_needed = True
        try:
            lock = self._domain_locks.setdefault(domain, asyncio.Lock())
            async with lock:
                changed = await self._ingest(job_id, domain, inputs, tracker)
                inputs_needed = False
                if changed is None:  # another runner finished it meanwhile
                    async with self._db.session() as session:
                        return await self.get(session, job_id)
                version = await self._publish_if_needed(domain, changed)
            async with self._db.transaction() as session:
                job = await session.get(IngestJob, job_id)
                assert job is not None
                job.index_version = version
                job.finished_at = utcnow()
                return job_view(job)
        except Exception as exc:
            inputs_needed = False
            await self._fail(job_id, exc)
            raise
        finally:
            if not inputs_needed and inputs and inputs[0].source.startswith(UPLOAD_PREFIX):
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(self._staging / job_id, ignore_errors=True))

    async def resume_orphans(self) -> list[str]:
        """Run every job left ``queued`` or ``running`` by a process that is gone, oldest
        first (the inline runner's start-up; see the module docstring). :meth:`run`
        decides about each ``running`` one, so a job whose runner lives is left alone; a
        job that fails is recorded as failed and the others still run. Returns the ids
        of the jobs it ran to their end.

        A queued job is resumed only when its holder is known to be gone, i.e. it was
        submitted on this host (:func:`holder_gone`): one queued by a process on another
        host, or before holders were recorded, waits for its own process.
        """
        async with self._db.session() as session:
            rows = await session.execute(
                select(IngestJob.id, IngestJob.status, IngestJob.holder)
                .where(IngestJob.status.in_([str(JobStatus.QUEUED), str(JobStatus.RUNNING)]))
                .order_by(IngestJob.created_at)
            )
            candidates = [i for i, status, holder in rows if status == JobStatus.RUNNING or holder_gone(holder)]
        finished = []
        for job_id in candidates:
            try:
                view = await self.run(job_id)
            except Exception:  # recorded on the job by run()
                log.exception("ingest job %s failed when resumed", job_id)
                continue
            if view.status != JobStatus.RUNNING:
                finished.append(job_id)
        if finished:
            log.warning("resumed %d ingest job(s) a stopped process had left: %s", len(finished), ", ".join(finished))
        return finished

    async def _ingest(
        self, job_id: str, domain: str, inputs: list[FileInput], tracker: _JobProgress
    ) -> bool | None:
        """Ingest and record the results in one transaction: True when SQL changed, None
        when the job is no longer ``running`` once this runner holds its lock."""
        async with self._db.transaction() as session:
            await _job_lock(session, job_id, wait=True)
            current = await session.scalar(select(IngestJob.status).where(IngestJob.id == job_id))
            if current != JobStatus.RUNNING:
                return None
            service = IngestionService(session, self._embedder, self._limits, self._scanner)
            report = await service.ingest(domain, inputs, progress=tracker)
            await tracker.settle()
            job = await session.get(IngestJob, job_id)
            assert job is not None
            results = [*(FileResult.from_json(r) for r in job.results), *report.results]
            job.results = [r.to_json() for r in results]
            job.done_files = len(results)
            failed = sum(r.status is FileStatus.FAILED for r in results)
            stored = sum(r.status is not FileStatus.FAILED for r in results)
            job.status = str(JobStatus.SUCCEEDED if failed == 0 else JobStatus.PARTIAL if stored else JobStatus.FAILED)
        return report.changed

    async def _publish_if_needed(self, domain: str, changed: bool) -> str | None:
        if changed:
            return await self._knowledge.publish(domain)
        # Nothing changed, but the index may still be missing or behind SQL.
        loaded = await self._knowledge.ensure(domain)
        return loaded.manifest.version

    async def _fail(self, job_id: str, exc: Exception) -> None:
        log.error("ingest job %s failed: %r", job_id, exc)
        async with self._db.transaction() as session:
            job = await session.get(IngestJob, job_id)
            if job is not None:
                if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                    job.status = str(JobStatus.FAILED)
                job.error = f"{type(exc).__name__}: {exc}"[:2000]
                job.finished_at = utcnow()

    # -- deleting ---------------------------------------------------------------------------
    async def delete_document(self, document_id: int) -> tuple[int, str | None]:
        """Delete a document (task boundary); returns (its id, the new index version)."""
        async with self._db.transaction() as session:
            view = await DocumentService(session).delete(document_id)
        lock = self._domain_locks.setdefault(view.domain, asyncio.Lock())
        async with lock:
            version = await self._knowledge.publish(view.domain)
        return view.id, version

    async def release_document(
        self, actor: Actor, trail: AuditTrail, document_id: int
    ) -> tuple[DocumentView, str | None]:
        """Release a quarantined document (task boundary, audited: backend/knowledge/
        quarantine.py) and republish its domain; returns the document and the new index
        version. Raises NotFound, DocumentNotFlagged."""
        async with self._db.transaction() as session:
            doc = await QuarantineService(session, trail).release(actor, document_id)
            view = document_view(doc, self._scanner)
        lock = self._domain_locks.setdefault(view.domain, asyncio.Lock())
        async with lock:
            version = await self._knowledge.publish(view.domain)
        return view, version

    async def delete_sources(
        self, sources: Sequence[str], *, domain: str | None = None
    ) -> list[tuple[str, FileResult]]:
        """Delete documents by source (task boundary) and republish the touched domains."""
        async with self._db.transaction() as session:
            results = await DocumentService(session).delete_sources(sources, domain=domain)
        for touched in sorted({d for d, r in results if r.status is FileStatus.DELETED}):
            async with self._domain_locks.setdefault(touched, asyncio.Lock()):
                await self._knowledge.publish(touched)
        return results


class _JobProgress:
    """Forwards progress to an optional sink and records done_files at most every 0.5 s."""

    def __init__(self, db: Database, job_id: str, sink: Progress | None) -> None:
        self._db = db
        self._job_id = job_id
        self._sink = sink
        self._last = 0.0
        self._pending: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    def __call__(self, phase: str, done: int, total: int, detail: str) -> None:
        if self._sink is not None:
            self._sink(phase, done, total, detail)
        now = time.monotonic()
        if phase != "read" or now - self._last < 0.5:
            return
        self._last = now
        if self._pending is None or self._pending.done():
            # Called on the event loop (read phase); the write is a separate short transaction.
            self._pending = self._loop.create_task(self._record(done))

    async def settle(self) -> None:
        """Wait for a progress write still in flight."""
        if self._pending is not None:
            await self._pending

    async def _record(self, done: int) -> None:
        async with self._db.transaction() as session:
            job = await session.get(IngestJob, self._job_id)
            if job is not None and job.status == JobStatus.RUNNING:
                job.done_files = max(job.done_files, done)


async def _claim(session: AsyncSession, job: IngestJob) -> bool:
    """Mark ``job`` running in this process, unless another runner has claimed it since
    ``session`` read it (False). SQLite ignores FOR UPDATE, so two processes may both
    have read it queued, or both found its runner gone: only one UPDATE matches."""
    claimed = await session.execute(
        update(IngestJob)
        .where(
            IngestJob.id == job.id,
            IngestJob.status == job.status,
            IngestJob.holder.is_not_distinct_from(job.holder),
        )
        .values(status=str(JobStatus.RUNNING), started_at=utcnow(), holder=this_process())
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


async def _runner_gone(session: AsyncSession, job: IngestJob) -> bool:
    """Whether the runner of a ``running`` job is gone: on PostgreSQL its lock is free,
    on SQLite its holder process has ended."""
    if session.get_bind().dialect.name == "postgresql":
        return await _job_lock(session, job.id, wait=False)
    return holder_gone(job.holder)


async def _job_lock(session: AsyncSession, job_id: str, *, wait: bool) -> bool:
    """Take the job's advisory lock until the transaction ends (PostgreSQL).

    ``wait``: block until it is free (True). Otherwise try once: True when taken.
    SQLite has no such locks: waiting succeeds, trying never does (:func:`holder_gone`
    tells there whether a runner is gone).
    """
    if session.get_bind().dialect.name != "postgresql":
        return wait
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    result = await session.execute(
        text(f"SELECT {function}(:space, hashtext(:job_id))"), {"space": _LOCK_SPACE, "job_id": job_id}
    )
    return True if wait else bool(result.scalar())


def _input_json(item: FileInput) -> dict[str, object]:
    return {"source": item.source, "path": str(item.path), "groups": sorted(item.groups)}


def _input_from_json(raw: dict[str, object]) -> FileInput:
    groups = raw.get("groups", [])
    return FileInput(
        source=str(raw["source"]),
        path=Path(str(raw["path"])),
        groups=frozenset(str(g) for g in groups) if isinstance(groups, list) else frozenset(),
    )
