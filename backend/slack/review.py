"""A review's outcome, posted in the Slack thread where the question was asked (issue 22).

A listener of backend.review.notify.ReviewNotifier: best effort, a failure is logged and
the decision stands.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from backend.db.models import SlackThread
from backend.db.session import Database
from backend.review.types import ReviewView
from backend.settings import Settings
from backend.slack.blocks import escape
from backend.slack.wiring import web_client

log = logging.getLogger(__name__)

_SAID = {
    "approved": "A reviewer approved the answer to your question:",
    "edited": "A reviewer corrected the answer to your question:",
    "rejected": "A reviewer did not approve an answer to your question:",
}


async def post_review_outcome(settings: Settings, db: Database, view: ReviewView) -> None:
    """Post the outcome in the question's Slack thread, when it came through Slack."""
    if view.channel != "slack" or not settings.slack_configured:
        return
    async with db.session() as session:
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
    text = f"{_SAID.get(view.status, 'A reviewer decided on your question:')}\n{escape(view.final_text or '')}"
    try:
        await web_client(settings).chat_postMessage(channel=thread[0], thread_ts=thread[1], text=text)
    except Exception as exc:  # slack_sdk raises its own error types; the decision stands
        log.warning("review %s: posting the outcome to Slack failed (%s)", view.review_id, exc)
