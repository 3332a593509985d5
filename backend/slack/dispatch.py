"""Where jobs run once a handler has acked: in this process, or on a Celery worker.

Slack wants an answer to every request within three seconds; an answer from an LLM
takes longer. Handlers therefore only build a job and :meth:`Dispatcher.submit` it.
In the embedded default the job runs as an asyncio task of the API process; with
a broker (scale-out) it becomes the Celery task ``expertgate.slack.job`` (backend.taskqueue), run by a worker
with the same settings.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import anyio

from backend.slack.types import SlackJob, job_to_payload
from backend.taskqueue import TaskQueue

log = logging.getLogger(__name__)

class JobRunner(Protocol):
    async def run(self, job: SlackJob) -> None: ...


class Dispatcher(Protocol):
    async def submit(self, job: SlackJob) -> None:
        """Hand the job over; returns at once (never waits for the job)."""

    async def drain(self) -> None:
        """Wait for the jobs this process runs itself (shutdown, tests)."""


class InlineDispatcher:
    """Jobs as tasks of the running event loop. A failing job is logged, never raised
    into the handler (which has already answered Slack)."""

    def __init__(self, runner: JobRunner) -> None:
        self._runner = runner
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, job: SlackJob) -> None:
        task = asyncio.create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: SlackJob) -> None:
        try:
            await self._runner.run(job)
        except Exception:
            log.exception("slack: %s failed", type(job).__name__)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


class CeleryDispatcher:
    """Jobs as Celery messages (JSON) on the broker; a worker runs them."""

    def __init__(self, queue: TaskQueue) -> None:
        self._queue = queue

    async def submit(self, job: SlackJob) -> None:
        payload = job_to_payload(job)
        # Publishing is a blocking network call: keep it off the event loop.
        await anyio.to_thread.run_sync(self._queue.slack, payload)

    async def drain(self) -> None:
        return None
