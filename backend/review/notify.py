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
from collections.abc import Awaitable, Callable

import httpx

from backend.review.types import ReviewView
from backend.settings import Settings

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_S = 5.0

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


Listener = Callable[[ReviewView], Awaitable[None]]


class ReviewNotifier:
    """The webhook, and each channel's ``listeners`` (the Slack adapter's
    backend.slack.review.post_review_outcome): each best effort, none raises."""

    def __init__(self, settings: Settings, *listeners: Listener) -> None:
        self._settings = settings
        self._listeners = listeners

    async def decided(self, view: ReviewView) -> None:
        """Tell the webhook and every listener; never raises."""
        await asyncio.gather(self._webhook(view), *(listen(view) for listen in self._listeners))

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
