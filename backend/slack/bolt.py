"""The slack-bolt app: Slack requests in, jobs out. Built by :func:`build_bolt_app`.

Every listener acks, turns the request into a job (backend/slack/types.py) and hands
it to the dispatcher; nothing slow happens before the ack. Bolt verifies the signing
secret and refuses requests older than five minutes (HTTP mode; /slack/events checked
both, and the body's shape, before bolt ran: backend/slack/inbound.py).

Every request runs at most once, across every API replica sharing the database: the
middleware here claims it (store.claim_event) before any listener runs and drops it if
the claim was already taken. The claim is the event id for Events API deliveries (so
Slack's retries, ``X-Slack-Retry-Num``, re-signed with a new timestamp, are dropped)
and the signature for everything else (a slash command or a button click replayed
byte for byte within the five minutes a signature is accepted is dropped; a new
command has a new ``trigger_id``, so a new signature).

A listener that finds a field missing raises SlackRequestMalformed, which the error
handler answers with 400 in the error table's shape, and a request no listener takes
gets 404 in that shape; any other failure (a hand-off to the broker that failed) is a
500. On every failure the claim is released, so Slack's retry is taken up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncBoltRequest
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from backend.db.session import Database
from backend.errors import AppError, NotFound
from backend.slack import blocks, store
from backend.slack.dispatch import Dispatcher
from backend.slack.errors import SlackRequestMalformed
from backend.slack.inbound import SlackBody
from backend.slack.types import AskJob, FeedbackJob, HomeJob
from experts.registry import ExpertRegistry

log = logging.getLogger(__name__)

CLAIM = "expertgate_claim"  # the context key holding the request's claim (see claim_key)


def to_bolt_request(body: SlackBody, headers: Mapping[str, str], query: Mapping[str, str]) -> AsyncBoltRequest:
    """The bolt request for a checked body (backend/slack/inbound.py), reading it as
    ``body.payload`` (bolt's own parse drops commands whose text says "payload").

    Raises SlackRequestMalformed where bolt's context extractors, which index the body
    assuming Slack's shapes, fail on it (``"team": 5``, ``"authorizations": []``)."""
    try:
        request = AsyncBoltRequest(body=body.text, query=dict(query), headers=dict(headers))
        if request.body != body.payload:
            request.body = body.payload
            request.context = build_async_context(AsyncBoltContext({}), body.payload)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise SlackRequestMalformed(f"the request body does not have Slack's shape ({type(exc).__name__})") from None
    return request


def claim_key(body: Mapping[str, Any], headers: Mapping[str, Sequence[str]]) -> str | None:
    """What makes this request one request: the event id of an Events API delivery, else
    the signature (an HMAC of timestamp and body); None for URL verification (no work)
    and in Socket Mode (unsigned; its envelopes are acknowledged over the socket)."""
    if body.get("type") == "url_verification":
        return None
    event_id = body.get("event_id") if body.get("type") == "event_callback" else None
    if isinstance(event_id, str):
        return event_id
    signature = (headers.get("x-slack-signature") or [""])[0]
    if not signature.startswith("v0="):
        return None
    return "sig:" + signature[3:63]  # 240 bits of the HMAC: slack_events.event_id holds 64


def lookup(value: Any, *path: str) -> str | None:
    """``value[path[0]][path[1]]...``, or None where the path is absent; raises
    SlackRequestMalformed (naming the path) where it holds something but a string."""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is not None and not isinstance(value, str):
        raise SlackRequestMalformed(f"the request's {'.'.join(path)} is not a string", param=".".join(path))
    return value


def field(value: Any, *path: str) -> str:
    """:func:`lookup` for a field Slack always sends: SlackRequestMalformed if absent."""
    found = lookup(value, *path)
    if found is None:
        raise SlackRequestMalformed(f"the request has no {'.'.join(path)}", param=".".join(path))
    return found


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
        # A request no listener takes reaches on_error, which answers it in the error
        # table's shape (bolt's own 404 body is {"error": "unhandled request"}).
        raise_error_for_unhandled_request=True,
    )
    experts = frozenset(registry.names)

    @app.middleware
    async def run_once(
        body: dict[str, Any], next: Callable[[], Awaitable[None]], request: AsyncBoltRequest, context: AsyncBoltContext
    ) -> BoltResponse | None:
        claim = claim_key(body, request.headers)
        if claim is not None:
            if not await store.claim_event(db, claim):
                retry = request.headers.get("x-slack-retry-num", ["0"])[0]
                log.info("slack: request %s already taken (retry %s); ignored", claim, retry)
                return BoltResponse(status=200, body="")
            context[CLAIM] = claim
        await next()
        return None

    @app.error
    async def on_error(error: Exception, context: AsyncBoltContext) -> BoltResponse | None:
        """Whatever failed, the request was not handled: its claim is released, so Slack's
        retry is taken up (a failed hand-off to the broker) rather than dropped."""
        claim = context.get(CLAIM)
        if isinstance(claim, str):
            await store.release_event(db, claim)
        refusal: AppError | None = None
        if isinstance(error, SlackRequestMalformed):
            refusal = error
        elif isinstance(error, BoltUnhandledRequestError):
            refusal = NotFound("expertgate does not handle this Slack request", code="slack_request_unhandled")
        if refusal is not None:
            return BoltResponse(
                status=refusal.status, body=json.dumps(refusal.body()), headers={"content-type": "application/json"}
            )
        log.error("slack: request failed", exc_info=error)
        return None  # bolt answers 500

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], ack: AsyncAck) -> None:
        await ack()
        job = AskJob(
            "mention", field(event, "channel"), field(event, "user"), lookup(event, "text") or "",
            field(event, "ts"), lookup(event, "thread_ts"),
        )  # fmt: skip
        await dispatcher.submit(job)

    @app.event("message")
    async def on_message(event: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext) -> None:
        await ack()
        if event.get("subtype") or event.get("bot_id") or "user" not in event:
            return  # edits, joins, other bots: not questions
        text, thread_ts = lookup(event, "text") or "", lookup(event, "thread_ts")
        if event.get("channel_type") == "im":
            job = AskJob("dm", field(event, "channel"), field(event, "user"), text, field(event, "ts"), thread_ts)
        elif thread_ts and f"<@{context.bot_user_id}>" not in text:
            # A reply in a thread; the job checks it continues one of our conversations.
            # (A reply that mentions the bot also arrives as app_mention: answered there.)
            job = AskJob("thread", field(event, "channel"), field(event, "user"), text, field(event, "ts"), thread_ts)
        else:
            return
        await dispatcher.submit(job)

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any], ack: AsyncAck) -> None:
        await ack()
        if event.get("tab", "home") == "home":
            await dispatcher.submit(HomeJob(field(event, "user")))

    @app.command("/ask")
    async def on_ask(command: dict[str, Any], ack: AsyncAck) -> None:
        channel, user = field(command, "channel_id"), field(command, "user_id")
        expert, question = parse_command(lookup(command, "text") or "", experts)
        if not question:
            await ack(text="Usage: `/ask [expert] question`, e.g. `/ask legal what is our notice period?`")
            return
        await ack(text="Asking…")
        await dispatcher.submit(AskJob("command", channel, user, question, expert=expert))

    async def on_feedback(body: dict[str, Any], action: dict[str, Any], ack: AsyncAck) -> None:
        await ack()
        channel = lookup(body, "channel", "id") or lookup(body, "container", "channel_id") or ""
        user, thread_ts = field(body, "user", "id"), lookup(body, "message", "thread_ts")
        if field(action, "action_id") == blocks.SHOULD_HAVE_GONE_TO:
            request_id, _, expert = field(action, "selected_option", "value").partition("|")
            job = FeedbackJob(channel, user, request_id, "down", expert, thread_ts)
        else:
            rating: Literal["up", "down"] = "up" if action["action_id"] == blocks.HELPFUL else "down"
            job = FeedbackJob(channel, user, field(action, "value"), rating, None, thread_ts)
        await dispatcher.submit(job)

    for action_id in (blocks.HELPFUL, blocks.NOT_HELPFUL, blocks.SHOULD_HAVE_GONE_TO):
        app.action(action_id)(on_feedback)
    return app
