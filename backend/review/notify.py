"""Telling the asker where they asked, once a review is decided (issue 22).

The web conversation updates by itself (the decision rewrites the held message). Two
more places hear of it, each best effort (a failure is logged, the decision stands):

- **Slack**: when the question came through Slack, the outcome is posted in its thread.
- **A webhook**: with ``EXPERTGATE_REVIEW_WEBHOOK_URL`` set, a JSON POST per decision
  (``review_id, request_id, conversation_id, expert, status, final_text, reason,
  decided_at``), for systems that asked through the API.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from sqlalchemy import select

from backend.db.models import SlackThread
from backend.db.session import Database
from backend.review.types import ReviewView
from backend.settings import Settings

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_S = 5.0

_SAID = {
    "approved": "A reviewer approved the answer to your question:",
    "edited": "A reviewer corrected the answer to your question:",
    "rejected": "A reviewer did not approve an answer to your question:",
}


def payload(view: ReviewView) -> dict[str, object]:
    return {
        "review_id": view.review_id,
        "request_id": view.request_id,
        "conversation_id": view.conversation_id,
        "expert": view.expert,
        "status": view.status,
        "final_text": view.final_text,
        "reason": view.reason,
        "decided_at": view.decided_at.isoformat() if view.decided_at else None,
    }


class ReviewNotifier:
    def __init__(self, settings: Settings, db: Database) -> None:
        self._settings = settings
        self._db = db

    async def decided(self, view: ReviewView) -> None:
        """Tell Slack and the webhook (each when configured); never raises."""
        await asyncio.gather(self._webhook(view), self._slack(view))

    async def _webhook(self, view: ReviewView) -> None:
        url = self._settings.review_webhook_url
        if not url:
            return
        try:
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S) as client:
                response = await client.post(url, json=payload(view))
                response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("review %s: the webhook failed (%s)", view.review_id, exc)

    async def _slack(self, view: ReviewView) -> None:
        if view.channel != "slack" or not self._settings.slack_configured:
            return
        async with self._db.session() as session:
            thread = (
                await session.execute(
                    select(SlackThread.channel_id, SlackThread.thread_ts)
                    .where(SlackThread.conversation_id == view.conversation_id)
                    .limit(1)
                )
            ).first()
        if thread is None:
            log.warning("review %s: no Slack thread for conversation %s", view.review_id, view.conversation_id)
            return
        from backend.slack.blocks import escape
        from backend.slack.wiring import web_client

        text = f"{_SAID.get(view.status, 'A reviewer decided on your question:')}\n{escape(view.final_text or '')}"
        try:
            await web_client(self._settings).chat_postMessage(channel=thread[0], thread_ts=thread[1], text=text)
        except Exception as exc:  # slack_sdk raises its own error types; the decision stands
            log.warning("review %s: posting the outcome to Slack failed (%s)", view.review_id, exc)
