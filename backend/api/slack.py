"""POST /slack/events: Slack's Events API, slash commands and interactivity, via bolt.

Mounted by :func:`install_slack` only when Slack is configured. The Slack bot is built
on the first request from the app's runtime (which exists only once the lifespan ran)
and closed by :func:`close_slack` at shutdown.

Before bolt runs, :mod:`backend.slack.inbound` checks the signature (401 in the error
table's shape) and then the body (400): no body Slack would not send reaches bolt, so
none can make it fail with a 500. Bodies over EXPERTGATE_MAX_BODY_BYTES are refused
with 413 by the app's body limit before they are read.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI, Request, Response
from slack_bolt.adapter.starlette.async_handler import to_starlette_response

from backend.runtime import Runtime
from backend.settings import Settings
from backend.slack import inbound
from backend.slack.bolt import to_bolt_request
from backend.slack.errors import SlackNotConfigured, SlackSignatureInvalid
from backend.slack.wiring import SlackBot, build_slack

PATH = "/slack/events"


def slack_bot(app: FastAPI, settings: Settings) -> SlackBot:
    slack: SlackBot | None = getattr(app.state, "slack", None)
    if slack is None:
        runtime: Runtime = app.state.runtime
        slack = build_slack(settings, runtime)
        app.state.slack = slack
    return slack


def install_slack(app: FastAPI, settings: Settings) -> None:
    """Add the route (no-op unless the signing secret and bot token are set)."""
    if not settings.slack_configured:
        return
    if settings.slack_signing_secret is None:  # slack_configured says it is set
        raise SlackNotConfigured("EXPERTGATE_SLACK_SIGNING_SECRET: the Slack app's signing secret is not set")
    secret = settings.slack_signing_secret.get_secret_value().encode()
    lock = asyncio.Lock()

    @app.post(PATH, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        body = await request.body()
        headers = request.headers
        try:
            inbound.verify(
                secret, body, headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature"), time.time()
            )
        except SlackSignatureInvalid:
            if inbound.is_ssl_check(body):
                return Response(status_code=200)
            raise
        parsed = inbound.parse(body, headers.get("content-type"))
        async with lock:  # one bot even when the first requests race
            bot = slack_bot(request.app, settings)
        bolt_request = to_bolt_request(parsed, dict(headers), dict(request.query_params))
        return to_starlette_response(await bot.bolt.async_dispatch(bolt_request))


async def close_slack(app: FastAPI) -> None:
    bot: SlackBot | None = getattr(app.state, "slack", None)
    if bot is not None:
        await bot.close()
