"""POST /slack/events: Slack's Events API, slash commands and interactivity, via bolt.

Mounted by :func:`install_slack` only when Slack is configured. The runtime is built
on the first request from the app's container (the container exists only once the
lifespan ran) and closed by :func:`close_slack` at shutdown.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request, Response
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler

from backend.container import Container
from backend.settings import Settings
from backend.slack.wiring import SlackRuntime, build_slack

PATH = "/slack/events"


def slack_runtime(app: FastAPI, settings: Settings) -> SlackRuntime:
    runtime: SlackRuntime | None = getattr(app.state, "slack", None)
    if runtime is None:
        container: Container = app.state.container
        runtime = build_slack(settings, container)
        app.state.slack = runtime
    return runtime


def install_slack(app: FastAPI, settings: Settings) -> None:
    """Add the route (no-op unless the signing secret and bot token are set)."""
    if not settings.slack_configured:
        return
    lock = asyncio.Lock()

    @app.post(PATH, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        async with lock:  # one runtime even when the first requests race
            runtime = slack_runtime(request.app, settings)
        return await AsyncSlackRequestHandler(runtime.bolt).handle(request)


async def close_slack(app: FastAPI) -> None:
    runtime: SlackRuntime | None = getattr(app.state, "slack", None)
    if runtime is not None:
        await runtime.close()
