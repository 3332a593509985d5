"""Settings + container in, the Slack runtime out: client, service, dispatcher, bolt app.

Called by the API (on the first request to /slack/events), by ``expertgate slack
--socket`` and by the Celery worker; never at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from backend.container import Container
from backend.settings import Settings
from backend.slack.bolt import build_bolt_app
from backend.slack.dispatch import CeleryDispatcher, Dispatcher, InlineDispatcher
from backend.slack.errors import SlackNotConfigured
from backend.slack.identity import SlackIdentity
from backend.slack.service import SlackService


@dataclass
class SlackRuntime:
    bolt: AsyncApp
    service: SlackService
    dispatcher: Dispatcher

    async def close(self) -> None:
        await self.dispatcher.drain()


def web_client(settings: Settings) -> AsyncWebClient:
    """Slack's Web API client for the bot token, at EXPERTGATE_SLACK_API_URL."""
    if settings.slack_bot_token is None:
        raise SlackNotConfigured("EXPERTGATE_SLACK_BOT_TOKEN: the Slack bot token (xoxb-...) is not set")
    return AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)


def build_service(settings: Settings, container: Container) -> SlackService:
    client = web_client(settings)
    identity = SlackIdentity(container.db, client, container.audit, auto_provision=settings.slack_auto_provision)
    return SlackService(
        db=container.db,
        pipeline=container.pipeline,
        registry=container.registry,
        audit=container.audit,
        quota=container.quota,
        client=client,
        identity=identity,
        update_interval_s=settings.slack_update_interval_s,
    )


def _celery_producer(settings: Settings) -> Any:
    from celery import Celery

    return Celery("expertgate", broker=settings.redis_url, set_as_current=False)


def build_dispatcher(settings: Settings, service: SlackService) -> Dispatcher:
    """Celery when asked for, or on ``auto`` when a broker (EXPERTGATE_REDIS_URL) is set."""
    mode = settings.slack_dispatch
    if mode == "auto":
        mode = "celery" if settings.redis_url else "inline"
    if mode == "celery":
        if not settings.redis_url:
            raise SlackNotConfigured("EXPERTGATE_SLACK_DISPATCH=celery needs EXPERTGATE_REDIS_URL (the broker)")
        return CeleryDispatcher(_celery_producer(settings))
    return InlineDispatcher(service)


def build_slack(settings: Settings, container: Container, *, socket_mode: bool = False) -> SlackRuntime:
    """Raises SlackNotConfigured naming the missing EXPERTGATE_SLACK_* variable."""
    if not socket_mode and settings.slack_signing_secret is None:
        raise SlackNotConfigured("EXPERTGATE_SLACK_SIGNING_SECRET: the Slack app's signing secret is not set")
    service = build_service(settings, container)
    dispatcher = build_dispatcher(settings, service)
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    bolt = build_bolt_app(
        client=service.client,
        signing_secret=secret,
        db=container.db,
        registry=container.registry,
        dispatcher=dispatcher,
    )
    return SlackRuntime(bolt, service, dispatcher)
