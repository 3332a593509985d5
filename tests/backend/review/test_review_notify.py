"""The asker hears of a review's outcome where they asked (issue 22): a question asked in
Slack gets the decision posted in its thread, through the real slack_sdk against the
local stand-in for Slack's Web API."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.db.models import Conversation, SlackThread, User, utcnow
from backend.db.session import Database
from backend.review.notify import ReviewNotifier
from backend.review.types import ReviewView
from backend.settings import Settings
from backend.slack.review import post_review_outcome
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


def decided(channel: str, conversation_id: str) -> ReviewView:
    return ReviewView(
        review_id="rev-1", request_id="req-1", conversation_id=conversation_id, message_id=1, expert="legal",
        trigger="always", delivery="hold", channel=channel, question="What is the liability cap?",
        draft="24 months", grounding=None, citations=(), status="edited", final_text="12 months of fees <b>",
        reviewer_id=2, reviewer_email="rita@example.com", reason="cap", created_at=datetime.now(UTC),
        decided_at=datetime.now(UTC),
    )  # fmt: skip


async def test_a_slack_question_gets_the_outcome_in_its_thread(
    db: Database, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    async with db.transaction() as s:
        user = User(email="ana@example.com")
        s.add(user)
        await s.flush()
        conversation = Conversation(id="conv-1", user_id=user.id, title="cap", channel="slack")
        s.add(conversation)
        await s.flush()
        s.add(SlackThread(channel_id="C1", thread_ts="17.1", slack_user_id="U1", conversation_id=conversation.id,
                          created_at=utcnow()))  # fmt: skip
        conversation_id = conversation.id
    settings = Settings(
        data_dir=tmp_path,
        slack_signing_secret="s" * 32,  # type: ignore[arg-type]
        slack_bot_token="xoxb-t",  # type: ignore[arg-type]
        slack_api_url=fake_slack.api_url,
    )
    await ReviewNotifier(settings, functools.partial(post_review_outcome, settings, db)).decided(decided("slack", conversation_id))
    (posted,) = fake_slack.of("chat.postMessage")
    assert (posted["channel"], posted["thread_ts"]) == ("C1", "17.1")
    assert posted["text"].startswith("A reviewer corrected the answer")
    assert "12 months of fees &lt;b&gt;" in posted["text"]
    # A question asked on the web or the API posts nothing to Slack.
    await ReviewNotifier(settings, functools.partial(post_review_outcome, settings, db)).decided(decided("api", conversation_id))
    assert len(fake_slack.of("chat.postMessage")) == 1
