"""The producer side of the task queue: the one way an API replica hands work to workers,
and the one rule that decides whether work goes there at all.

Tasks are sent by name (the names below; backend.worker registers them), so a producer
needs no task code and no worker context. Sending is synchronous (a Redis round trip):
call it off the event loop.
"""

from __future__ import annotations

from typing import Any, Literal

from celery import Celery
from kombu.exceptions import OperationalError

from backend.errors import ServiceUnavailable
from backend.settings import SettingsError

RETENTION = "expertgate.audit.retention"
TRAIN = "expertgate.router.train"
INGEST = "expertgate.knowledge.ingest_job"
SLACK = "expertgate.slack.job"

Mode = Literal["auto", "inline", "celery"]


def runs_on_workers(mode: Mode, broker_url: str | None, *, variable: str) -> bool:
    """Whether work set to ``mode`` goes to Celery workers: ``celery`` always (it needs a
    broker: raises SettingsError naming ``variable`` without one), ``inline`` never,
    ``auto`` exactly when a broker (EXPERTGATE_REDIS_URL) is configured."""
    if mode == "celery" and not broker_url:
        raise SettingsError(f"{variable}=celery needs EXPERTGATE_REDIS_URL (the broker)")
    return mode == "celery" or (mode == "auto" and bool(broker_url))


class TaskQueue:
    """Enqueues tasks on the Celery broker at ``broker_url`` (Redis)."""

    def __init__(self, broker_url: str) -> None:
        # No result backend: the API follows jobs in SQL, never through Celery results.
        self._app: Any = Celery("expertgate", broker=broker_url, set_as_current=False)
        self._app.conf.update(task_serializer="json", accept_content=["json"])

    def ingest(self, job_id: str) -> str:
        """Enqueue ingest job ``job_id``; returns the Celery task id.

        Raises ServiceUnavailable (queue_unavailable) when the broker cannot be reached:
        the job then stays ``queued`` and can be enqueued again.
        """
        try:
            result = self._app.send_task(INGEST, kwargs={"job_id": job_id})
        except OperationalError as exc:
            raise ServiceUnavailable(
                f"the job queue is unreachable; job {job_id} stays queued ({exc})", code="queue_unavailable"
            ) from exc
        return str(result.id)

    def slack(self, payload: dict[str, object]) -> None:
        """Enqueue one Slack job (the JSON of backend.slack.types)."""
        self._app.send_task(SLACK, args=[payload])

    def close(self) -> None:
        self._app.close()
