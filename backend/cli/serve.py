"""`expertgate serve`: one uvicorn process, or several worker processes on one port.

Why workers. Python runs one event loop per process on one core; on a machine with N
cores a single process leaves N-1 of them to the encoder's thread pool at best. With
``--workers N`` (or EXPERTGATE_WORKERS) uvicorn forks N processes that share the
listening socket; each builds its own runtime (models, DB pool, Redis client) from
the environment through :func:`worker_app`.

What must not run once per worker is done here, in the parent, before they start:
the database migration and the bootstrap admin key (two workers racing to create the
first admin would make one of them fail to start). Two things cannot be shared at all
and are checked first:

- the embedded LLM (``api_base: local``) is one llama.cpp server on one port owned by
  the process that started it, so several workers are refused with it: run it apart
  and point experts at it, or use one worker;
- without Redis, rate limits, token budgets and expert capacity are counted per
  process, so N workers admit up to N times the configured limits. That is allowed
  (a benchmark, a single-tenant box) but said loudly at start.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from backend.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

WORKER_APP = "backend.cli.serve:worker_app"


def check_workers(settings: Settings) -> None:
    """Refuse a worker count the configuration cannot serve. Raises SettingsError."""
    if settings.workers == 1:
        return
    from experts.registry import ExpertRegistry

    local = sorted(s.name for s in ExpertRegistry.from_yaml(settings.experts_file) if s.llm.is_local)
    if local:
        raise SettingsError(
            f"EXPERTGATE_WORKERS={settings.workers}: experts {', '.join(local)} use api_base 'local', "
            "the embedded LLM server that one process owns; run with one worker, or run llama.cpp "
            "(or vLLM) apart and set their api_base to it"
        )
    if not settings.redis_url:
        log.warning(
            "%d workers without EXPERTGATE_REDIS_URL: rate limits, token budgets and expert capacity "
            "are counted per worker process, so up to %d times the configured limits are admitted",
            settings.workers,
            settings.workers,
        )


def prepare(settings: Settings) -> None:
    """Migrate and create the bootstrap admin once, before workers start."""
    from backend.bootstrap import bootstrap_admin
    from backend.cli.context import Access, open_command, prepare_database

    if not settings.bootstrap_admin:
        prepare_database(settings)
        return

    async def run() -> None:
        async with open_command(settings, Access.WRITE) as cmd:
            await bootstrap_admin(cmd.db, settings, cmd.trail)

    asyncio.run(run())


def serve(settings: Settings) -> None:
    """Run the API until interrupted, in ``settings.workers`` processes."""
    import uvicorn

    from backend.app import create_app

    check_workers(settings)
    log.info(
        "expertgate on http://%s:%d (OpenAI API at /v1), %d worker(s)",
        settings.host, settings.port, settings.workers,
    )  # fmt: skip
    if settings.workers == 1:
        app = create_app(settings)
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )  # fmt: skip
        return
    prepare(settings)
    # Each worker imports WORKER_APP and builds its settings from the environment; host
    # and port are the parent's business (it holds the socket).
    uvicorn.run(
        WORKER_APP, factory=True, workers=settings.workers,
        host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )  # fmt: skip


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn calls this in each worker)."""
    from backend.app import create_app
    from backend.observability.logs import setup_logging

    settings = load_settings()
    setup_logging(settings)
    return create_app(settings)
