"""The producer side of the task queue: what an API replica uses to hand work to workers.

Tasks are sent by name (see backend.worker.tasks), so this needs no task code and no
worker context. Sending is synchronous (a Redis round trip): call it off the event loop.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from backend.errors import ServiceUnavailable
from backend.worker.tasks import INGEST


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

    def close(self) -> None:
        self._app.close()
