"""The slack-bolt app: Slack requests in, jobs out. Built by :func:`build_bolt_app`.

Every listener acks, turns the request into a job (backend/slack/types.py) and hands
it to the dispatcher; nothing slow happens before the ack. Bolt verifies the signing
secret and refuses requests older than five minutes (HTTP mode); the middleware here
drops Events API deliveries whose event id was already taken, which covers Slack's
retries (``X-Slack-Retry-Num``) across every API replica sharing the database.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from backend.db.session import Database
from backend.slack import blocks, store
from backend.slack.dispatch import Dispatcher
from backend.slack.types import AskJob, FeedbackJob, HomeJob, SlackJob
from experts.registry import ExpertRegistry

log = logging.getLogger(__name__)


def parse_command(text: str, experts: frozenset[str]) -> tuple[str | None, str]:
    """``/ask [expert] question`` -> (expert or None, question)."""
    first, _, rest = text.strip().partition(" ")
    if first.lower() in experts and rest.strip():
        return first.lower(), rest.strip()
    return None, text.strip()


def build_bolt_app(
    *,
    client: AsyncWebClient,
    signing_secret: str,
    db: Database,
    registry: ExpertRegistry,
    dispatcher: Dispatcher,
) -> AsyncApp:
    """The bolt app. ``signing_secret`` may be empty only for Socket Mode (no HTTP)."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        # Listeners only enqueue, so running them before the response keeps the ack
        # fast and guarantees the job was handed over when Slack hears 200.
        process_before_response=True,
        name="expertgate",
    )
    experts = frozenset(registry.names)

    async def hand_over(job: SlackJob, body: dict[str, Any]) -> None:
        """Queue ``job``; if that fails, release the event's claim so Slack's retry of it
        is taken up instead of dropped as a duplicate, then fail (Slack sees a 500)."""
        try:
            await dispatcher.submit(job)
        except Exception:
            event_id = body.get("event_id")
            if isinstance(event_id, str):
                await store.release_event(db, event_id)
            raise

    @app.middleware
    async def drop_retries(
        body: dict[str, Any], next: Callable[[], Awaitable[None]], request: Any
    ) -> BoltResponse | None:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if isinstance(event_id, str) and not await store.claim_event(db, event_id):
            retry = request.headers.get("x-slack-retry-num", ["0"])[0]
            log.info("slack: event %s already taken (retry %s); ignored", event_id, retry)
            return BoltResponse(status=200, body="")
        await next()
        return None

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], body: dict[str, Any], ack: AsyncAck) -> None:
        await ack()
        await hand_over(
            AskJob(
                "mention", event["channel"], event["user"], event.get("text", ""), event["ts"], event.get("thread_ts")
            ),
            body,
        )

    @app.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext) -> None:
        await ack()
        if event.get("subtype") or event.get("bot_id") or "user" not in event:
            return  # edits, joins, other bots: not questions
        text = event.get("text", "")
        if event.get("channel_type") == "im":
            job = AskJob("dm", event["channel"], event["user"], text, event["ts"], event.get("thread_ts"))
        elif event.get("thread_ts") and f"<@{context.bot_user_id}>" not in text:
            # A reply in a thread; the job checks it continues one of our conversations.
            # (A reply that mentions the bot also arrives as app_mention: answered there.)
            job = AskJob("thread", event["channel"], event["user"], text, event["ts"], event["thread_ts"])
        else:
            return
        await hand_over(job, body)

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any], body: dict[str, Any], ack: AsyncAck) -> None:
        await ack()
        if event.get("tab", "home") == "home":
            await hand_over(HomeJob(event["user"]), body)

    @app.command("/ask")
    async def on_ask(command: dict[str, Any], ack: AsyncAck) -> None:
        expert, question = parse_command(command.get("text", ""), experts)
        if not question:
            await ack(text="Usage: `/ask [expert] question`, e.g. `/ask legal what is our notice period?`")
            return
        await ack(text="Asking…")
        await dispatcher.submit(AskJob("command", command["channel_id"], command["user_id"], question, expert=expert))

    async def on_feedback(body: dict[str, Any], action: dict[str, Any], ack: AsyncAck) -> None:
        await ack()
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
        thread_ts = (body.get("message") or {}).get("thread_ts")
        user = body["user"]["id"]
        if action["action_id"] == blocks.SHOULD_HAVE_GONE_TO:
            request_id, _, expert = action["selected_option"]["value"].partition("|")
            job = FeedbackJob(channel, user, request_id, "down", expert, thread_ts)
        else:
            rating: Literal["up", "down"] = "up" if action["action_id"] == blocks.HELPFUL else "down"
            job = FeedbackJob(channel, user, action["value"], rating, None, thread_ts)
        await dispatcher.submit(job)

    for action_id in (blocks.HELPFUL, blocks.NOT_HELPFUL, blocks.SHOULD_HAVE_GONE_TO):
        app.action(action_id)(on_feedback)
    return app
