"""The Celery app factory: Settings in, a configured app with our tasks out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery

from backend.settings import Settings, SettingsError
from backend.taskqueue import RETENTION
from backend.worker.context import WorkerContext
from backend.worker.tasks import RetryPolicy, register

# Retention runs this often when EXPERTGATE_AUDIT_RETENTION_DAYS is set (one beat only:
# the chart and compose run beat as a single replica).
RETENTION_EVERY = timedelta(hours=24)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    if settings.audit_retention_days is None:
        return {}
    return {
        "audit-retention": {
            "task": RETENTION,
            "schedule": RETENTION_EVERY,
            "kwargs": {"days": settings.audit_retention_days},
            # A run missed by more than a period is superseded by the next one.
            "options": {"expires": RETENTION_EVERY.total_seconds()},
        }
    }


def make_celery(settings: Settings, *, context: WorkerContext | None = None, retry: RetryPolicy | None = None) -> Any:
    """Build the app. Broker and result backend: EXPERTGATE_REDIS_URL (required)."""
    if not settings.redis_url:
        raise SettingsError("EXPERTGATE_REDIS_URL: the worker needs Redis as its broker")
    app = Celery("expertgate", broker=settings.redis_url, backend=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A task is acknowledged after it ran, and requeued if its worker dies: every
        # task is safe to run again (ingest jobs skip when no longer queued, retention
        # and training are idempotent in effect).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=timedelta(days=1),
        broker_connection_retry_on_startup=True,
        # A visibility timeout longer than the longest task (a big ingest or training).
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout_s},
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_schedule=beat_schedule(settings),
    )
    register(app, context or WorkerContext(settings), retry)
    from backend.worker.slack import register_slack  # imports the pipeline: only when built

    register_slack(app, settings)
    return app
