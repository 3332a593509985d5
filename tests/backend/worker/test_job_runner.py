"""Who runs ingest jobs submitted through the API: Celery workers or the API process."""

from __future__ import annotations

import socket

import pytest

from backend.errors import ServiceUnavailable
from backend.runtime import build_task_queue
from backend.settings import Settings, SettingsError
from backend.taskqueue import TaskQueue


def test_jobs_go_to_celery_when_a_broker_is_configured() -> None:
    assert build_task_queue(Settings()) is None
    assert build_task_queue(Settings(redis_url="redis://127.0.0.1:6379/0", job_runner="inline")) is None
    queue = build_task_queue(Settings(redis_url="redis://127.0.0.1:6379/0"))
    assert isinstance(queue, TaskQueue)
    queue.close()
    with pytest.raises(SettingsError, match="EXPERTGATE_REDIS_URL"):
        build_task_queue(Settings(job_runner="celery"))


def test_an_unreachable_broker_is_a_503_with_a_stable_code() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = TaskQueue(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(ServiceUnavailable) as caught:
            queue.ingest("job-1")
    finally:
        queue.close()
    assert caught.value.status == 503 and caught.value.code == "queue_unavailable"
    assert "job-1 stays queued" in caught.value.message
