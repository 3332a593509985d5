"""SQL for the Slack channel: delivered event ids, thread -> conversation, history.

Functions taking a session flush and never commit; :func:`claim_event` owns its short
transaction because it must be decided before the request is acked.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db.models import Message, SlackEvent, SlackThread, utcnow
from backend.db.session import Database

# Slack retries a delivery for about an hour at most; a day of ids is plenty.
EVENT_ID_KEEP = timedelta(days=1)
# Earlier turns sent with a thread follow-up (user + assistant messages).
HISTORY_MESSAGES = 10


async def claim_event(db: Database, event_id: str) -> bool:
    """True the first time ``event_id`` is seen (by any process sharing the database)."""
    try:
        async with db.transaction() as session:
            session.add(SlackEvent(event_id=event_id, received_at=utcnow()))
    except IntegrityError:
        return False
    async with db.transaction() as session:
        await session.execute(delete(SlackEvent).where(SlackEvent.received_at < utcnow() - EVENT_ID_KEEP))
    return True


async def release_event(db: Database, event_id: str) -> None:
    """Forget ``event_id`` so Slack's retry of it is answered (its hand-off failed)."""
    async with db.transaction() as session:
        await session.execute(delete(SlackEvent).where(SlackEvent.event_id == event_id))


async def thread_conversation(session: AsyncSession, channel_id: str, thread_ts: str, slack_user_id: str) -> str | None:
    return await session.scalar(
        select(SlackThread.conversation_id).where(
            SlackThread.channel_id == channel_id,
            SlackThread.thread_ts == thread_ts,
            SlackThread.slack_user_id == slack_user_id,
        )
    )


async def remember_thread(
    session: AsyncSession, channel_id: str, thread_ts: str, slack_user_id: str, conversation_id: str
) -> None:
    """Map the thread to the conversation (no-op when already mapped)."""
    if await thread_conversation(session, channel_id, thread_ts, slack_user_id) is None:
        session.add(
            SlackThread(
                channel_id=channel_id,
                thread_ts=thread_ts,
                slack_user_id=slack_user_id,
                conversation_id=conversation_id,
                created_at=utcnow(),
            )
        )
        await session.flush()


async def history(session: AsyncSession, conversation_id: str) -> list[tuple[str, str]]:
    """The last turns of the conversation as (role, text), oldest first."""
    rows = (
        await session.execute(
            select(Message.role, Message.content)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
            .limit(HISTORY_MESSAGES)
        )
    ).all()
    return [(role, text) for role, text in reversed(rows)]
