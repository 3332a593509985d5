"""The Slack bot end to end: signed requests to /slack/events on the real app.

Real slack-bolt verifies the signatures; the real slack_sdk talks to a local stand-in
for Slack's Web API (tests/fakes/slack_api.py) that records every call; experts answer
through litellm from the fake OpenAI server; PostgreSQL is real and migrated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from backend.api.slack import slack_bot
from backend.app import create_app
from backend.audit.types import Actor
from backend.db.models import AuditEvent, Conversation, Feedback, Message, User
from backend.quota.policies import PolicyChange, QuotaPolicies
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from backend.slack.dispatch import InlineDispatcher
from backend.slack.types import SlackJob
from router.encoder import Encoder
from tests.conftest import make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Fault, Reply
from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack

pytestmark = pytest.mark.integration

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0000GEN"
DM = "D0000DM1"
ANA, BEN = "U0000ANA", "U0000BEN"


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def slack(fake_slack: FakeSlack) -> FakeSlack:
    fake_slack.reset()
    fake_slack.users.update({ANA: ("ana@example.com", "ana"), BEN: ("ben@example.com", "ben")})
    return fake_slack


@dataclass
class Bot:
    http: httpx.AsyncClient
    app: FastAPI
    runtime: Runtime

    async def post(self, body: bytes, content_type: str, *, ts: int | None = None, secret: str = SECRET,
                   headers: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
        """POST signed exactly as Slack signs: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")."""
        stamp = str(int(time.time()) if ts is None else ts)
        digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        return await self.http.post(
            "/slack/events",
            content=body,
            headers={
                "content-type": content_type,
                "x-slack-request-timestamp": stamp,
                "x-slack-signature": f"v0={digest}",
                **(headers or {}),
            },
        )

    async def event(self, event: dict[str, Any], *, event_id: str | None = None, **kw: Any) -> httpx.Response:
        body = {
            "token": "legacy-unused",
            "team_id": TEAM_ID,
            "api_app_id": "A0000APP",
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "event": event,
        }
        return await self.post(json.dumps(body).encode(), "application/json", **kw)

    async def command(self, text: str, user: str = ANA) -> httpx.Response:
        form = {
            "token": "legacy-unused", "team_id": TEAM_ID, "channel_id": CHANNEL, "channel_name": "general",
            "user_id": user, "user_name": "ana", "command": "/ask", "text": text,
            "response_url": "https://hooks.slack.invalid/commands/1", "trigger_id": "1.2.3",
        }  # fmt: skip
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")

    async def click(
        self, action: dict[str, Any], user: str, thread_ts: str, *, channel_field: bool = True
    ) -> httpx.Response:
        """A block action; ``channel_field=False``: the payload names its channel only in
        ``container`` (as Slack sends it for some surfaces)."""
        payload: dict[str, Any] = {
            "type": "block_actions",
            "team": {"id": TEAM_ID},
            "user": {"id": user},
            "api_app_id": "A0000APP",
            "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1.1"},
            "message": {"ts": "1.1", "thread_ts": thread_ts},
            "trigger_id": "1.2.3",
            "actions": [action],
        }
        if channel_field:
            payload["channel"] = {"id": CHANNEL}
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, "application/x-www-form-urlencoded")

    async def settle(self) -> None:
        """Wait for the answers the handlers handed to the background."""
        await slack_bot(self.app, self.runtime.settings).dispatcher.drain()


@pytest.fixture
async def bot(
    request: pytest.FixtureRequest,
    pg_url: str,
    tmp_path: Path,
    gate_dir: Path,
    llm: FakeOpenAI,
    encoder: Encoder,
    slack: FakeSlack,
) -> AsyncIterator[Bot]:
    """The app with Slack configured; ``indirect`` parametrization adds settings."""
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        database_url=pg_url,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base, legal={"pii": "block"}),
        bootstrap_admin=False,
        slack_signing_secret=SECRET,  # type: ignore[arg-type]
        slack_bot_token="xoxb-test-token",  # type: ignore[arg-type]
        slack_api_url=slack.api_url,
        slack_update_interval_s=0,
        **getattr(request, "param", {}),
    )
    runtime = build_runtime(settings, encoder=encoder, environ={})
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        bot = Bot(http, app, runtime)
        yield bot
        await bot.settle()
    await runtime.close()


async def add_user(bot: Bot, email: str) -> str:
    return await make_key(bot.runtime, email)


def mention(
    text: str, *, user: str = ANA, ts: str = "1700000000.000100", thread_ts: str | None = None
) -> dict[str, Any]:
    event = {"type": "app_mention", "user": user, "text": f"<@{BOT_USER_ID}> {text}", "ts": ts,
             "channel": CHANNEL, "event_ts": ts}  # fmt: skip
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


async def upload_legal_doc(bot: Bot, groups: str = "") -> None:
    admin = await make_key(bot.runtime, "root@example.com", roles={"admin"})
    r = await bot.http.post(
        "/api/v1/documents",
        headers={"authorization": f"Bearer {admin}"},
        data={"domain": "legal", "groups": groups},
        files=[("files", ("msa-liability.md", b"# Liability\n\nSection 9 caps liability at twelve months of fees.\n"))],
    )
    assert r.status_code == 202, r.text


async def test_mention_streams_into_the_thread_then_shows_expert_citations_and_buttons(
    bot: Bot, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    await add_user(bot, "ana@example.com")
    await upload_legal_doc(bot)
    # Long enough to stream past what the output check holds back (its last 64 characters).
    llm.script(Reply("Section 9 caps liability at twelve months of fees [1]. It is the total for every claim "
                     "under the agreement, and the clause names it the liability cap [1]."))  # fmt: skip
    r = await bot.event(mention("what does the liability cap clause in our master services agreement say?"))
    assert r.status_code == 200
    await bot.settle()

    # The placeholder went into the mention's thread, then was updated in place.
    posted = slack.of("chat.postMessage")
    assert [(p["channel"], p["thread_ts"], p["text"]) for p in posted] == [
        (CHANNEL, "1700000000.000100", "_Thinking…_")
    ]
    updates = slack.of("chat.update")
    assert len(updates) >= 3 and len({(u["channel"], u["ts"]) for u in updates}) == 1
    streamed = [u["text"] for u in updates[:-1]]
    assert all(t.startswith("*legal* is answering…") for t in streamed)
    # Each progress update shows more of the answer than the one before.
    lengths = [len(t) for t in streamed]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    final = updates[-1]
    assert "*legal* expert · confidence" in final["text"]
    assert "Section 9 caps liability at twelve months of fees [1]." in final["text"]
    blocks = final["blocks"]
    assert blocks[0]["elements"][0]["text"].startswith(":label: *legal* expert")
    sources = next(b for b in blocks if b["type"] == "context" and "Sources" in b["elements"][0]["text"])
    assert "[1] Liability (`upload/msa-liability.md`)" in sources["elements"][0]["text"]
    actions = blocks[-1]
    request_id = actions["elements"][0]["value"]
    assert [e["action_id"] for e in actions["elements"]] == [
        "feedback_helpful",
        "feedback_not_helpful",
        "feedback_expert",
    ]
    assert [o["text"]["text"] for o in actions["elements"][2]["options"]] == ["code", "support", "general"]
    # The exchange is the web's: stored under the Slack channel with that request id.
    async with bot.runtime.db.session() as s:
        conv = await s.scalar(select(Conversation))
        answer = await s.scalar(select(Message).where(Message.role == "assistant"))
        user = await s.scalar(select(User).where(User.email == "ana@example.com"))
    assert conv is not None and conv.channel == "slack"
    assert answer is not None and answer.request_id == request_id and answer.expert == "legal"
    assert user is not None and user.slack_user_id == ANA
    assert slack.of("users.info") == [{"user": ANA}]


async def test_thread_follow_up_continues_the_conversation(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    await add_user(bot, "ana@example.com")
    llm.script(Reply("Use git rebase -i HEAD~3."), Reply("Then force-push with --force-with-lease."))
    await bot.event(mention("how do I squash my last three git commits into one?", ts="1700000001.000001"))
    await bot.settle()
    follow_up = {"type": "message", "channel_type": "channel", "channel": CHANNEL, "user": ANA,
                 "text": "and how do I force-push the rebased git branch afterwards?", "ts": "1700000002.000001",
                 "thread_ts": "1700000001.000001"}  # fmt: skip
    await bot.event(follow_up)
    # Someone else's reply in the same thread is not a question to the bot.
    await bot.event({**follow_up, "user": BEN, "ts": "1700000003.000001", "text": "nice"})
    await bot.settle()

    finals = [u for u in slack.of("chat.update") if "blocks" in u]
    assert len(finals) == 2
    assert "Then force-push with --force-with-lease." in finals[1]["text"]
    assert all(p["thread_ts"] == "1700000001.000001" for p in slack.of("chat.postMessage"))
    async with bot.runtime.db.session() as s:
        convs = (await s.scalars(select(Conversation))).all()
        msgs = (await s.scalars(select(Message).order_by(Message.id))).all()
    assert len(convs) == 1 and len(msgs) == 4
    # The follow-up went to the LLM with the earlier turn, and stayed with the code expert.
    sent = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] != "system"]
    assert sent[-3:] == [
        "how do I squash my last three git commits into one?",
        "Use git rebase -i HEAD~3.",
        "and how do I force-push the rebased git branch afterwards?",
    ]
    assert [m.expert for m in msgs if m.role == "assistant"] == ["code", "code"]


async def test_restricted_documents_are_cited_in_a_dm_but_not_in_a_channel(
    bot: Bot, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    await make_key(bot.runtime, "ben@example.com", groups={"legal-team"})
    await upload_legal_doc(bot, groups="legal-team")
    question = "what does the liability cap clause in our master services agreement say?"
    in_channel = mention(question, user=BEN, ts="1700000040.000001")
    assert (await bot.event(in_channel)).status_code == 200
    await bot.settle()
    channel_answer = slack.of("chat.update")[-1]["text"]
    assert "msa-liability.md" not in channel_answer  # the whole channel would read it

    dm = {"type": "message", "channel_type": "im", "channel": DM, "user": BEN, "text": question,
          "ts": "1700000041.000001"}  # fmt: skip
    assert (await bot.event(dm, event_id="Ev0DM000001")).status_code == 200
    await bot.settle()
    assert "msa-liability.md" in slack.of("chat.update")[-1]["text"]  # only Ben reads it


async def test_direct_message_is_answered_in_its_thread(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    await add_user(bot, "ben@example.com")
    llm.script(Reply("Open Settings then Billing then Invoices."))
    r = await bot.event({"type": "message", "channel_type": "im", "channel": DM, "user": BEN,
                         "text": "where do I download my invoice for last month in Beacon billing?",
                         "ts": "1700000010.000001"})  # fmt: skip
    assert r.status_code == 200
    await bot.settle()
    assert slack.of("chat.postMessage")[0] == {"channel": DM, "thread_ts": "1700000010.000001", "text": "_Thinking…_"}
    final = slack.of("chat.update")[-1]
    assert final["text"].startswith(":label: *support* expert")
    assert "Open Settings then Billing then Invoices." in final["text"]


async def test_slash_command_names_the_expert_and_threads_the_answer(
    bot: Bot, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    await add_user(bot, "ana@example.com")
    llm.script(Reply("Clause 4 sets a 30-day notice period."))
    r = await bot.command("legal what is our notice period?")
    assert r.status_code == 200 and r.text == "Asking…"  # bolt's ack(text=...): shown to the user only
    await bot.settle()
    question, placeholder = slack.of("chat.postMessage")
    assert question == {"channel": CHANNEL, "text": f"<@{ANA}> asked the *legal* expert: what is our notice period?"}
    assert placeholder["thread_ts"] != "" and placeholder["text"] == "_Thinking…_"
    final = slack.of("chat.update")[-1]
    assert ":label: *legal* expert · confidence" in final["text"] and "requested" in final["text"]
    assert llm.requests[-1]["messages"][-1]["content"] == "what is our notice period?"


async def test_feedback_buttons_reach_the_feedback_table_and_the_audit_log(
    bot: Bot, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    await add_user(bot, "ana@example.com")
    await bot.event(mention("how do I squash my last three git commits into one?", ts="1700000020.000001"))
    await bot.settle()
    actions = slack.of("chat.update")[-1]["blocks"][-1]["elements"]
    helpful, select_menu = actions[0], actions[2]
    r = await bot.click({"type": "button", "action_id": helpful["action_id"], "value": helpful["value"],
                         "block_id": "b", "action_ts": "1"}, ANA, "1700000020.000001")  # fmt: skip
    assert r.status_code == 200
    await bot.settle()
    option = next(o for o in select_menu["options"] if o["value"].endswith("|support"))
    await bot.click({"type": "static_select", "action_id": "feedback_expert", "selected_option": option,
                     "block_id": "b", "action_ts": "2"}, ANA, "1700000020.000001")  # fmt: skip
    await bot.settle()
    # Someone else may not rate Ana's answer: told so, nothing stored for them. (This click
    # names its channel in `container` only: the reply still finds the channel.)
    await bot.click({"type": "button", "action_id": "feedback_not_helpful", "value": helpful["value"],
                     "block_id": "b", "action_ts": "3"}, BEN, "1700000020.000001", channel_field=False)  # fmt: skip
    await bot.settle()

    await bot.runtime.chainer.drain()  # the app's chainer moves audit events out of the outbox
    async with bot.runtime.db.session() as s:
        rows = (await s.scalars(select(Feedback))).all()
        events = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "feedback.submitted"))).all()
    assert [(f.rating, f.expected_expert, f.routed_expert) for f in rows] == [("down", "support", "code")]
    assert [(e.channel, e.user_email, e.payload["rating"], e.payload["expected_expert"]) for e in events] == [
        ("slack", "ana@example.com", "up", None),
        ("slack", "ana@example.com", "down", "support"),
    ]
    assert all(e.request_id == helpful["value"] for e in events)
    ephemeral = slack.of("chat.postEphemeral")
    assert [(e["user"], e["channel"]) for e in ephemeral] == [(ANA, CHANNEL), (ANA, CHANNEL), (BEN, CHANNEL)]
    assert ephemeral[1]["text"] == "Thanks! Noted that it should have gone to *support*."
    assert "I don't know you yet" in ephemeral[2]["text"]  # Ben has no expertgate account


async def test_bad_signature_and_stale_timestamp_are_refused(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    await add_user(bot, "ana@example.com")
    forged = await bot.event(mention("hello"), secret="not-the-secret")
    stale = await bot.event(mention("hello"), ts=int(time.time()) - 6 * 60)
    await bot.settle()
    assert forged.status_code == 401 and stale.status_code == 401
    assert slack.of("chat.postMessage") == [] and llm.requests == []


async def test_a_retried_event_is_answered_once(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    await add_user(bot, "ana@example.com")
    event = mention("how do I squash my last three git commits into one?", ts="1700000030.000001")
    first = await bot.event(event, event_id="Ev0RETRY01")
    again = await bot.event(
        event, event_id="Ev0RETRY01", headers={"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    )
    await bot.settle()
    assert first.status_code == again.status_code == 200
    assert len(slack.of("chat.postMessage")) == 1 and len(llm.requests) == 1


async def test_a_failed_hand_off_is_taken_up_by_slacks_retry(
    bot: Bot, slack: FakeSlack, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_user(bot, "ana@example.com")
    real_submit = InlineDispatcher.submit
    failures = [RuntimeError("broker unreachable")]

    async def submit_once_failing(self: InlineDispatcher, job: SlackJob) -> None:
        if failures:
            raise failures.pop()
        await real_submit(self, job)

    monkeypatch.setattr(InlineDispatcher, "submit", submit_once_failing)
    event = mention("how do I squash my last three git commits into one?", ts="1700000031.000001")
    first = await bot.event(event, event_id="Ev0HANDOFF1")
    assert first.status_code >= 500 and not failures  # Slack will retry
    again = await bot.event(event, event_id="Ev0HANDOFF1", headers={"x-slack-retry-num": "1"})
    await bot.settle()
    assert again.status_code == 200
    assert len(slack.of("chat.postMessage")) == 1 and len(llm.requests) == 1


async def test_over_quota_gets_a_friendly_message_in_the_thread(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    await add_user(bot, "ana@example.com")
    async with bot.runtime.db.transaction() as s:
        await QuotaPolicies(s, bot.runtime.audit).set(Actor.cli("test"), "user", "ana@example.com", PolicyChange(rpm=1))
    await bot.event(mention("how do I squash my last three git commits into one?", ts="1700000040.000001"))
    await bot.settle()
    await bot.event(mention("and how do I undo a rebase?", ts="1700000041.000001"))
    await bot.settle()
    final = slack.of("chat.update")[-1]
    assert final["text"].startswith(":hourglass: You have reached your usage limit for now.")
    assert "requests per minute" in final["text"] and "request id:" in final["text"]
    assert len(llm.requests) == 1


async def test_pii_block_and_experts_down_are_told_not_silent(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    await add_user(bot, "ana@example.com")
    # legal blocks personal data (see the fixture's experts.yaml).
    await bot.event(mention("legal question: can we share jane.doe@example.com's contract with a vendor?",
                            ts="1700000050.000001"))  # fmt: skip
    await bot.settle()
    assert slack.of("chat.update")[-1]["text"].startswith(":lock: I can't send that question")
    llm.script(*[Fault(503)] * 8)
    await bot.event(mention("how do I squash my last three git commits into one?", ts="1700000051.000001"))
    await bot.settle()
    assert slack.of("chat.update")[-1]["text"].startswith(":warning: The experts are unavailable right now.")


async def test_unknown_user_is_told_how_to_get_access(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    await bot.event(mention("hello there", user=BEN, ts="1700000060.000001"))
    await bot.settle()
    (told,) = slack.of("chat.postMessage")
    assert told["thread_ts"] == "1700000060.000001"
    assert "I don't know you yet" in told["text"] and "ben@example.com" in told["text"]
    assert llm.requests == []


@pytest.mark.parametrize("bot", [{"slack_auto_provision": True}], indirect=True)
async def test_unknown_user_is_provisioned_when_configured(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    await bot.event(mention("how do I squash my last three git commits into one?", user=BEN, ts="1700000070.000001"))
    await bot.settle()
    assert slack.of("chat.update")[-1]["text"].startswith(":label: *code* expert")
    await bot.runtime.chainer.drain()
    async with bot.runtime.db.session() as s:
        ben = await s.scalar(select(User).where(User.email == "ben@example.com"))
        provisioned = await s.scalar(select(AuditEvent).where(AuditEvent.action == "user.provisioned"))
    assert ben is not None and ben.slack_user_id == BEN and ben.roles == ["user"]
    assert provisioned is not None and provisioned.payload == {"slack_user_id": BEN}


@pytest.mark.parametrize("bot", [{"slack_auto_provision": True}], indirect=True)
async def test_a_guest_is_never_provisioned(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    slack.guests.add(BEN)
    await bot.event(mention("hello there", user=BEN, ts="1700000071.000001"))
    await bot.settle()
    (told,) = slack.of("chat.postMessage")
    assert "I don't know you yet" in told["text"] and llm.requests == []
    async with bot.runtime.db.session() as s:
        assert await s.scalar(select(User).where(User.email == "ben@example.com")) is None


async def test_app_home_shows_the_users_usage(bot: Bot, slack: FakeSlack, llm: FakeOpenAI) -> None:
    await add_user(bot, "ana@example.com")
    async with bot.runtime.db.transaction() as s:
        await QuotaPolicies(s, bot.runtime.audit).set(
            Actor.cli("test"), "user", "ana@example.com", PolicyChange(rpm=5, tokens_per_day=10_000)
        )
    await bot.event(mention("how do I squash my last three git commits into one?", ts="1700000080.000001"))
    await bot.settle()
    r = await bot.event({"type": "app_home_opened", "user": ANA, "channel": "D0000HOM", "tab": "home",
                         "event_ts": "1700000081.000001"})  # fmt: skip
    assert r.status_code == 200
    await bot.settle()
    (published,) = slack.of("views.publish")
    assert published["user_id"] == ANA and published["view"]["type"] == "home"
    text = "\n".join(b["text"]["text"] for b in published["view"]["blocks"] if b["type"] == "section")
    assert "Signed in as *ana@example.com*" in text
    assert "requests per minute: 4 of 5 left" in text
    assert "tokens per day:" in text and "of 10000 left" in text


async def test_rate_limited_updates_fall_back_to_posting_the_answer(
    bot: Bot, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    await add_user(bot, "ana@example.com")
    slack.rate_limit_updates = True
    llm.script(Reply("Use git rebase -i HEAD~3."))
    await bot.event(mention("how do I squash my last three git commits into one?", ts="1700000090.000001"))
    await bot.settle()
    # The first refused update stops streaming; the final refused update becomes a post.
    assert len(slack.of("chat.update")) == 2
    placeholder, answer = slack.of("chat.postMessage")
    assert placeholder["text"] == "_Thinking…_"
    assert answer["thread_ts"] == "1700000090.000001" and "Use git rebase -i HEAD~3." in answer["text"]
    assert answer["blocks"][-1]["type"] == "actions"
