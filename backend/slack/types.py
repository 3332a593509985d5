"""Jobs handed from the Slack handlers to the service (plain values: they cross Celery).

Each job is built from one Slack request in the handler, after the request was acked,
and carries only what the service needs. :func:`job_to_payload` / :func:`job_from_payload`
are the JSON form used by the Celery task.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

AskKind = Literal["mention", "dm", "thread", "command"]


@dataclass(frozen=True, slots=True)
class AskJob:
    """A question for the assistant.

    ``ts`` is the Slack message that asked (None for a slash command, which has no
    message); ``thread_ts`` the root of the thread it was asked in, if any. ``expert``
    is an expert named by ``/ask <expert> ...`` (None: route).
    """

    kind: AskKind
    channel_id: str
    user_id: str
    text: str
    ts: str | None = None
    thread_ts: str | None = None
    expert: str | None = None

    @property
    def reply_ts(self) -> str | None:
        """The thread the answer goes into."""
        return self.thread_ts or self.ts


@dataclass(frozen=True, slots=True)
class FeedbackJob:
    """A click on an answer's feedback buttons (``expected_expert``: the select menu)."""

    channel_id: str
    user_id: str
    request_id: str
    rating: Literal["up", "down"]
    expected_expert: str | None = None
    thread_ts: str | None = None


@dataclass(frozen=True, slots=True)
class HomeJob:
    """The user opened the bot's App Home tab: publish their usage."""

    user_id: str


SlackJob = AskJob | FeedbackJob | HomeJob

_KINDS: dict[str, type[AskJob] | type[FeedbackJob] | type[HomeJob]] = {
    "ask": AskJob,
    "feedback": FeedbackJob,
    "home": HomeJob,
}


def job_to_payload(job: SlackJob) -> dict[str, object]:
    name = next(k for k, v in _KINDS.items() if isinstance(job, v))
    return {"job": name, **asdict(job)}


def job_from_payload(payload: dict[str, object]) -> SlackJob:
    """Raises KeyError / TypeError for a payload that no job matches."""
    fields = dict(payload)
    cls = _KINDS[str(fields.pop("job"))]
    return cls(**fields)  # type: ignore[arg-type]
