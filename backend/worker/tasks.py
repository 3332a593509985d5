"""The tasks: thin adapters that call the same service methods as the CLI.

Registered on an app by :func:`register` (no module-level app) under the stable names
of backend.taskqueue, which producers send by name without importing this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.audit.retention import run_retention
from backend.audit.types import Actor
from backend.audit.writer import build_audit_trail
from backend.db.session import Database
from backend.errors import BadRequest
from backend.guard.policy import PiiGuard
from backend.taskqueue import INGEST, RETENTION, TRAIN
from backend.worker.context import WorkerContext
from backend.worker.errors import Handling, backoff_s, classify, failure

log = logging.getLogger(__name__)


MAX_RETRIES = 5


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = MAX_RETRIES
    base_s: float = 2.0
    cap_s: float = 300.0


def retention(ctx: WorkerContext, days: int | None = None) -> dict[str, object]:
    days = days or ctx.settings.audit_retention_days
    if days is None:
        raise BadRequest("no retention period: pass days or set EXPERTGATE_AUDIT_RETENTION_DAYS", param="days")
    trail = build_audit_trail(ctx.settings, PiiGuard())

    async def work(db: Database) -> tuple[int, str]:
        purged, cutoff = await run_retention(db, trail, Actor.system(), days)
        return purged, cutoff.isoformat()

    purged, cutoff = ctx.run(work)
    return {"purged": purged, "cutoff": cutoff, "days": days}


def train(
    ctx: WorkerContext,
    promote: bool = False,
    use_seed: bool = True,
    arch: str = "knn",
    seed: int = 7,
    data: list[str] | None = None,
) -> dict[str, object]:
    from backend.gate.training import train_config, train_from_all
    from backend.gate.wiring import router_store

    try:
        config = train_config(ctx.settings.router_finetune, arch, seed)
    except ValueError as exc:
        raise BadRequest(str(exc), param="arch") from exc
    registry, encoder = ctx.registry(), ctx.encoder()
    trail = build_audit_trail(ctx.settings, PiiGuard())

    async def work(db: Database) -> dict[str, object]:
        outcome = await train_from_all(
            db,
            trail,
            Actor.system(),
            registry,
            encoder,
            router_store(ctx.settings),
            extra_files=[Path(p) for p in data or ()],
            use_seed=use_seed,
            promote=promote,
            config=config,
        )
        return {
            "version": outcome.manifest.version,
            "promoted": outcome.promoted,
            "metrics": dict(outcome.manifest.metrics),
        }

    return ctx.run(work)


def ingest_job(ctx: WorkerContext, job_id: str) -> dict[str, object]:
    """Run a queued ingest job (submitted by the API or CLI) to the end.

    ``IngestJobs.run`` returns a job that is no longer queued as it is, so a redelivered
    message (worker killed mid-run, acks_late) never ingests twice.
    """
    from backend.knowledge.wiring import build_knowledge

    registry, encoder = ctx.registry(), ctx.encoder()

    async def work(db: Database) -> dict[str, object]:
        knowledge = build_knowledge(ctx.settings, db, registry, encoder)
        view = await knowledge.jobs.run(job_id)
        return {"job_id": job_id, "status": str(view.status), "index_version": view.index_version}

    return ctx.run(work)


def _adapter(ctx: WorkerContext, fn: Any, policy: RetryPolicy) -> Any:
    def task(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(ctx, *args, **kwargs)
        except Exception as exc:
            handling, code = classify(exc)
            retries = int(self.request.retries or 0)
            if handling is Handling.TRANSIENT and retries < policy.max_retries:
                delay = backoff_s(retries, base=policy.base_s, cap=policy.cap_s)
                log.warning("%s: %s (%s); retry %d in %.1fs", self.name, code, exc, retries + 1, delay)
                raise self.retry(exc=failure(exc), countdown=delay, max_retries=policy.max_retries) from exc
            if handling is Handling.UNEXPECTED:
                log.exception("%s failed unexpectedly", self.name)
            else:
                log.warning("%s failed: %s (%s), not retried", self.name, code, exc)
            raise failure(exc) from None

    task.__name__ = fn.__name__
    task.__doc__ = fn.__doc__
    return task


def register(app: Any, ctx: WorkerContext, policy: RetryPolicy | None = None) -> dict[str, Any]:
    """Register the tasks on ``app``; returns them by name."""
    policy = policy or RetryPolicy()
    out = {}
    for name, fn in ((RETENTION, retention), (TRAIN, train), (INGEST, ingest_job)):
        out[name] = app.task(name=name, bind=True, acks_late=True, shared=False)(_adapter(ctx, fn, policy))
    return out
