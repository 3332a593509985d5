"""One Slack job, start to end: who asks, the pipeline call, and every Slack reply.

The same stages the web and /v1 use (guard, route, admit, stream, record + audit) run
through :class:`~backend.chat.pipeline.ChatPipeline`; this module only adapts them to
Slack: a placeholder reply in the thread, ``chat.update`` at most every
``update_interval_s`` while the answer streams, then the final message with the expert,
citations and feedback controls. Every failure ends in a message the user sees.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from backend.audit.refusals import record_refusal
from backend.audit.writer import AuditTrail
from backend.chat.pipeline import ChatPipeline, Question, StreamFinished, StreamOpened
from backend.db.session import Database
from backend.errors import AppError, to_app_error
from backend.gate.feedback import FeedbackService
from backend.knowledge.types import NO_RETRIEVAL
from backend.principal import Principal
from backend.quota.service import QuotaService
from backend.slack import blocks, store
from backend.slack.identity import SlackIdentity
from backend.slack.types import AskJob, FeedbackJob, HomeJob, SlackJob
from experts.registry import AUTO, ExpertRegistry
from experts.types import TextDelta

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+>")


def question_text(text: str) -> str:
    """The question without user mentions (the bot's own ``<@U…>`` leads a mention)."""
    return _MENTION.sub("", text).strip()


@dataclass(frozen=True, slots=True)
class _Placeholder:
    channel: str
    ts: str
    thread_ts: str | None


class SlackService:
    """Runs jobs. Safe to share between concurrent jobs (holds no per-job state)."""

    def __init__(
        self,
        *,
        db: Database,
        pipeline: ChatPipeline,
        registry: ExpertRegistry,
        audit: AuditTrail,
        quota: QuotaService | None,
        client: AsyncWebClient,
        identity: SlackIdentity,
        update_interval_s: float,
    ) -> None:
        self._db = db
        self._pipeline = pipeline
        self._registry = registry
        self._audit = audit
        self._quota = quota
        self._client = client
        self._identity = identity
        self._interval = update_interval_s

    @property
    def client(self) -> AsyncWebClient:
        return self._client

    async def run(self, job: SlackJob) -> None:
        if isinstance(job, AskJob):
            await self.ask(job)
        elif isinstance(job, FeedbackJob):
            await self.feedback(job)
        else:
            await self.home(job)

    # -- questions -------------------------------------------------------------------
    async def ask(self, job: AskJob) -> None:
        """Answer ``job`` in its thread. A thread follow-up with no conversation of this
        user behind it was not addressed to the bot and is left alone."""
        conversation_id = None
        if job.kind == "thread":
            if job.thread_ts is None:
                return
            async with self._db.session() as session:
                conversation_id = await store.thread_conversation(session, job.channel_id, job.thread_ts, job.user_id)
            if conversation_id is None:
                return
        text = question_text(job.text)
        try:
            principal = await self._identity.resolve(job.user_id)
        except AppError as exc:
            await self._tell(job, blocks.error_text(exc))
            return
        if not text:
            await self._tell(job, "Ask me a question, e.g. `@expertgate how do I rotate my API key?`")
            return
        if job.kind != "dm":
            # Everyone in the channel reads the answer: use only what everyone may see
            # (no group-restricted experts or documents). A DM keeps the user's groups.
            principal = replace(principal, groups=frozenset())
        if job.kind == "command":
            # A slash command has no message to thread under: post the question first.
            to_whom = f" the *{job.expert}* expert" if job.expert else ""
            asked = await self._client.chat_postMessage(
                channel=job.channel_id,
                text=f"<@{job.user_id}> asked{to_whom}: {blocks.escape(text)}",
            )
            job = AskJob("command", str(asked["channel"]), job.user_id, text, ts=str(asked["ts"]), expert=job.expert)
        placeholder = await self._post_placeholder(job)
        await self._answer(job, principal, text, conversation_id, placeholder)

    async def _answer(
        self,
        job: AskJob,
        principal: Principal,
        text: str,
        conversation_id: str | None,
        placeholder: _Placeholder,
    ) -> None:
        request_id = None
        try:
            earlier: list[tuple[str, str]] = []
            if conversation_id is not None:
                async with self._db.session() as session:
                    earlier = await store.history(session, conversation_id)
            question = Question(principal, job.expert or AUTO, [*earlier, ("user", text)], conversation_id)
            request_id = question.request_id
            stream = await self._pipeline.open_stream(question)
            expert, retrieval, parts = stream.routed.decision.expert, NO_RETRIEVAL, []
            grounding: Mapping[str, object] | None = None
            live, last_update = True, time.monotonic()
            async with contextlib.aclosing(stream):  # its admission goes back on every way out
                async for event in stream:
                    if isinstance(event, StreamOpened):
                        expert, retrieval = event.expert, event.retrieval
                    elif isinstance(event, TextDelta):
                        parts.append(event.text)
                        if live and time.monotonic() - last_update >= self._interval:
                            live = await self._progress(placeholder, blocks.streaming_text(expert, "".join(parts)))
                            last_update = time.monotonic()
                    elif isinstance(event, StreamFinished):
                        conversation_id, retrieval, grounding = event.conversation_id, event.retrieval, event.grounding
        except Exception as exc:
            error = to_app_error(exc)
            if error is None:
                log.exception("slack: answering %s failed", request_id)
                error = AppError("something went wrong on our side")
            await record_refusal(
                self._db, self._audit, principal, exc, method="SLACK", path=f"slack:{job.kind}", request_id=request_id
            )
            await self._finish(placeholder, blocks.error_text(error, request_id), None)
            return
        assert conversation_id is not None, "a finished stream always names its conversation"
        if job.reply_ts is not None:
            async with self._db.transaction() as session:
                await store.remember_thread(session, placeholder.channel, job.reply_ts, job.user_id, conversation_id)
        view = blocks.AnswerView(
            request_id=stream.request_id,
            expert=expert,
            confidence=stream.routed.decision.confidence,
            reason=str(stream.routed.decision.reason),
            text="".join(parts),
            retrieval=retrieval,
            experts=[s.name for s in self._registry if s.allows(principal.groups)],
            grounding=grounding,
        )
        await self._finish(placeholder, blocks.answer_text(view), blocks.answer_blocks(view))

    async def _post_placeholder(self, job: AskJob) -> _Placeholder:
        posted = await self._client.chat_postMessage(
            channel=job.channel_id, thread_ts=job.reply_ts, text=blocks.THINKING
        )
        return _Placeholder(str(posted["channel"]), str(posted["ts"]), job.reply_ts)

    async def _progress(self, placeholder: _Placeholder, text: str) -> bool:
        """Show the partial answer; False once Slack refuses updates (rate limit or else),
        after which only the final message is sent."""
        try:
            await self._client.chat_update(channel=placeholder.channel, ts=placeholder.ts, text=text)
        except SlackApiError as exc:
            log.warning("slack: streaming updates stopped: %s", exc.response.get("error"))
            return False
        return True

    async def _finish(self, placeholder: _Placeholder, text: str, body: list[blocks.Block] | None) -> None:
        """Replace the placeholder with the final message; post it anew if Slack refuses
        the update (a rate limit must not lose the answer)."""
        try:
            await self._client.chat_update(channel=placeholder.channel, ts=placeholder.ts, text=text, blocks=body)
        except SlackApiError as exc:
            log.warning("slack: final update refused (%s); posting instead", exc.response.get("error"))
            await self._client.chat_postMessage(
                channel=placeholder.channel, thread_ts=placeholder.thread_ts, text=text, blocks=body
            )

    async def _tell(self, job: AskJob, text: str) -> None:
        """A message in the job's thread (or, for a slash command, to the user only)."""
        if job.kind == "command":
            await self._client.chat_postEphemeral(channel=job.channel_id, user=job.user_id, text=text)
        else:
            await self._client.chat_postMessage(channel=job.channel_id, thread_ts=job.reply_ts, text=text)

    # -- feedback ----------------------------------------------------------------------
    async def feedback(self, job: FeedbackJob) -> None:
        """Store the click through the web's FeedbackService and audit it, then thank the
        user (only they see it). Refusals are told to the user the same way."""
        try:
            principal = await self._identity.resolve(job.user_id)
            async with self._db.transaction() as session:
                await FeedbackService(session, self._registry, self._audit).submit(
                    principal, job.request_id, job.rating, expected_expert=job.expected_expert
                )
        except AppError as exc:
            text = blocks.error_text(exc)
        else:
            text = (
                f"Thanks! Noted that it should have gone to *{job.expected_expert}*."
                if job.expected_expert
                else "Thanks for the feedback!"
            )
        await self._client.chat_postEphemeral(
            channel=job.channel_id, user=job.user_id, text=text, thread_ts=job.thread_ts
        )

    # -- App Home ----------------------------------------------------------------------
    async def home(self, job: HomeJob) -> None:
        try:
            principal = await self._identity.resolve(job.user_id)
        except AppError as exc:
            view = blocks.home_view(None, (), blocks.error_text(exc))
        else:
            headroom = (await self._quota.usage(principal))[1] if self._quota is not None else ()
            view = blocks.home_view(principal.email, headroom)
        await self._client.views_publish(user_id=job.user_id, view=view)
