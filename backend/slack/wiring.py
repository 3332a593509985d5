"""Settings + the application's services in, the Slack bot out: client, service, dispatcher, bolt app.

Called by the API (on the first request to /slack/events), by ``expertgate slack
--socket`` and by the Celery worker; never at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from backend.audit.writer import AuditTrail
from backend.chat.pipeline import ChatPipeline
from backend.db.session import Database
from backend.quota.service import QuotaService
from backend.settings import Settings
from backend.slack.bolt import build_bolt_app
from backend.slack.dispatch import CeleryDispatcher, Dispatcher, InlineDispatcher
from backend.slack.errors import SlackNotConfigured
from backend.slack.identity import SlackIdentity
from backend.slack.service import SlackService
from backend.taskqueue import TaskQueue, runs_on_workers
from experts.registry import ExpertRegistry


class AppServices(Protocol):
    """What the Slack adapter uses of the application's services (backend.runtime.Runtime
    has them all; a test may pass any object that does)."""

    @property
    def db(self) -> Database: ...

    @property
    def pipeline(self) -> ChatPipeline: ...

    @property
    def registry(self) -> ExpertRegistry: ...

    @property
    def audit(self) -> AuditTrail: ...

    @property
    def quota(self) -> QuotaService | None: ...


@dataclass
class SlackBot:
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


def build_service(settings: Settings, services: AppServices) -> SlackService:
    client = web_client(settings)
    identity = SlackIdentity(services.db, client, services.audit, auto_provision=settings.slack_auto_provision)
    return SlackService(
        db=services.db,
        pipeline=services.pipeline,
        registry=services.registry,
        audit=services.audit,
        quota=services.quota,
        client=client,
        identity=identity,
        update_interval_s=settings.slack_update_interval_s,
    )


def build_dispatcher(settings: Settings, service: SlackService) -> Dispatcher:
    """Celery when asked for, or on ``auto`` when a broker (EXPERTGATE_REDIS_URL) is set."""
    if runs_on_workers(settings.slack_dispatch, settings.redis_url, variable="EXPERTGATE_SLACK_DISPATCH"):
        assert settings.redis_url is not None
        return CeleryDispatcher(TaskQueue(settings.redis_url))
    return InlineDispatcher(service)


def build_slack(settings: Settings, services: AppServices, *, socket_mode: bool = False) -> SlackBot:
    """Raises SlackNotConfigured naming the missing EXPERTGATE_SLACK_* variable."""
    if not socket_mode and settings.slack_signing_secret is None:
        raise SlackNotConfigured("EXPERTGATE_SLACK_SIGNING_SECRET: the Slack app's signing secret is not set")
    service = build_service(settings, services)
    dispatcher = build_dispatcher(settings, service)
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    bolt = build_bolt_app(
        client=service.client,
        signing_secret=secret,
        db=services.db,
        registry=services.registry,
        dispatcher=dispatcher,
    )
    return SlackBot(bolt, service, dispatcher)
