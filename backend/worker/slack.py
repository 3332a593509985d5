"""The Celery side of scale-out mode: a worker runs the Slack jobs the API enqueued.

Each worker process builds the full runtime (the pipeline needs the gate, experts and
indexes) once, on its first Slack job, and keeps one event loop for all jobs, because
the database engine is bound to the loop it first ran on. Jobs are acked early and
never retried: an answer already half-posted to Slack must not be posted twice.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from backend.audit.chainer import AuditChainer
from backend.settings import Settings
from backend.slack.service import SlackService
from backend.slack.types import job_from_payload
from backend.taskqueue import SLACK


class SlackWorker:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._loop: asyncio.Runner | None = None
        self._service: SlackService | None = None
        self._chainer: AuditChainer | None = None

    def _ready(self) -> tuple[asyncio.Runner, SlackService]:
        with self._lock:
            if self._loop is None or self._service is None:
                from backend.runtime import build_runtime
                from backend.slack.wiring import build_service

                runtime = build_runtime(self._settings)
                self._service = build_service(self._settings, runtime)
                self._chainer = runtime.chainer
                self._loop = asyncio.Runner()
            return self._loop, self._service

    def run(self, payload: dict[str, object]) -> None:
        """Run one job (the JSON of backend.slack.types) to the end."""
        loop, service = self._ready()
        with self._lock:  # one job at a time per loop (prefork runs one per process anyway)
            loop.run(service.run(job_from_payload(payload)))
            if self._chainer is not None:  # no background chainer in a worker: chain the job's events
                loop.run(self._chainer.settle())


def register_slack(app: Any, settings: Settings) -> None:
    """Register the Slack task (backend.taskqueue.SLACK) on the worker's Celery app (when a bot token is set)."""
    if settings.slack_bot_token is None:
        return
    worker = SlackWorker(settings)

    def slack_job(payload: dict[str, object]) -> None:
        worker.run(payload)

    app.task(name=SLACK, acks_late=False, shared=False)(slack_job)
