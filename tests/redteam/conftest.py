"""The red-team suite's harness: one app per module, attacked through every channel.

The model behind litellm is the fake OpenAI server answering with ``Echo()``: it
complies with anything by repeating everything it was given (system prompt, passages,
history). Whatever sensitive reaches the model therefore reaches the answer, and what
the suite finds in an answer is what the product let out, not what a polite model kept
back.

A module runs its whole campaign once (:func:`run_campaign`: build the app, ingest the
documents, let another user ask first, send every attack on every channel, read the
audit trail back) in one event loop, and its tests assert over the recorded
:class:`Seen` exchanges. Everything the caller got back is kept as the strings it held
(JSON bodies and SSE events parsed, Slack calls' text and blocks), so an escaped or
re-encoded leak is still seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.api.slack import slack_bot
from backend.app import create_app
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import audit_events, auth, copy_test_gate, make_key, write_experts_yaml
from tests.fakes.openai_server import Echo, FakeOpenAI, Reply
from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack
from tests.redteam import documents as docs
from tests.redteam.attacks import ATTACKS, Attack

SLACK_SECRET = "5e1f0c3b9d7a4e2f8c6b1a0d9e8f7c6b"
SLACK_CHANNEL = "C0000RED"
SLACK_DM = "D0000MAL"
ATTACKER_SLACK = "U0000MAL"
ATTACKER = "mallory@example.com"
VICTIM = "ana@example.com"
INSIDER = "miriam@example.com"


@dataclass
class Seen:
    """One request and what came of it."""

    attack: str  # the attack's id, or the name of a control / probe request
    channel: str  # chat | stream | route | slack | slack-dm | probe | control
    status: int
    shown: str  # every string the caller got back, joined by newlines
    answer: str  # the answer's text ("" when there was none)
    prompts: str  # every message the LLM received while this request ran
    request_id: str | None = None
    conversation: str | None = None  # the conversation id a plain answer was stored under
    citations: str = ""  # every string of the citations sent with the answer (/v1 only)
    cache: str | None = None  # the response cache's status for it (hit, miss...; /v1 only)


@dataclass
class Campaign:
    seen: list[Seen] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per channel, all attacks together
    # request id -> the safety record of its audit event ({} when the event has none)
    safety: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the safety record of every audited refusal (a refused request's response carries
    # another id than its event: the app's x-request-id, not the pipeline's)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    victim_conversation: str = ""

    def of(self, channel: str) -> list[Seen]:
        return [s for s in self.seen if s.channel == channel]

    def named(self, name: str) -> Seen:
        return next(s for s in self.seen if s.attack == name)


def strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)
    elif value is not None:
        yield str(value)


def sse_events(body: str) -> list[Any]:
    events: list[Any] = []
    for block in body.strip().split("\n\n"):
        data = block.removeprefix("data: ")
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def prompt_text(requests: Iterable[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for r in requests for m in r.get("messages", []))


@pytest.fixture(scope="module")
def echo_llm() -> Iterator[FakeOpenAI]:
    """The complying adversary: a fake OpenAI server whose every answer echoes its input."""
    # A streamed echo comes in chunks of a few words (still well under the 64 characters
    # the output check holds back): a long echo word by word costs seconds per request.
    server = FakeOpenAI(default=Echo(words_per_chunk=10)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    server.users[ATTACKER_SLACK] = (ATTACKER, "mallory")
    yield server
    server.stop()


class Harness:
    """The app under attack, its users and the channels to reach it."""

    def __init__(self, runtime: Runtime, llm: FakeOpenAI, slack: FakeSlack | None) -> None:
        self.runtime = runtime
        self.llm = llm
        self.slack = slack
        self.app = create_app(runtime.settings, runtime)
        self.app.state.runtime = runtime
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://t", timeout=60)
        self.keys: dict[str, str] = {}

    async def users(self) -> None:
        self.keys["admin"] = await make_key(self.runtime, "root@example.com", roles={"admin"})
        self.keys["victim"] = await make_key(self.runtime, VICTIM)
        self.keys["insider"] = await make_key(self.runtime, INSIDER, groups=set(docs.RESTRICTED_GROUPS.values()))
        self.keys["attacker"] = await make_key(self.runtime, ATTACKER, groups={"staff"})

    async def ingest(self) -> None:
        """The restricted samples with groups the attacker lacks; public samples, the
        secrets page and the injected page readable by everyone."""
        uploads: list[tuple[str, str, list[tuple[str, bytes]]]] = []
        for domain, path in docs.RESTRICTED.items():
            uploads.append((domain, docs.RESTRICTED_GROUPS[domain], [(path.name, path.read_bytes())]))
        for domain, paths in docs.PUBLIC.items():
            files = [(p.name, p.read_bytes()) for p in paths]
            files.append((f"{domain}-staging-credentials.md", docs.SECRETS_DOC))
            if domain == "support":
                files.append(("mobile-offline-sync-faq.md", docs.INJECTED_DOC))
            uploads.append((domain, "", files))
        for domain, groups, files in uploads:
            r = await self.http.post(
                "/api/v1/documents",
                headers=auth(self.keys["admin"]),
                data={"domain": domain, "groups": groups},
                files=[("files", f) for f in files],
            )
            assert r.status_code == 202, r.text
            job = (
                await self.http.get(f"/api/v1/ingest-jobs/{r.json()['id']}", headers=auth(self.keys["admin"]))
            ).json()
            assert job["status"] == "succeeded", job

    def _mark(self) -> tuple[int, int]:
        return len(self.llm.requests), len(self.slack.calls) if self.slack is not None else 0

    def _prompts(self, mark: tuple[int, int]) -> str:
        return prompt_text(self.llm.requests[mark[0] :])

    async def chat(self, who: str, name: str, body: dict[str, Any], *, channel: str = "chat") -> Seen:
        mark = self._mark()
        r = await self.http.post("/v1/chat/completions", headers=auth(self.keys[who]), json=body)
        shown, answer, conversation, citations, cache = "", "", None, "", None
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            events = [e for e in sse_events(r.text) if isinstance(e, dict)]
            shown = "\n".join(strings(events))
            answer = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
            citations = "\n".join(strings([e["expertgate"].get("citations") for e in events if "expertgate" in e]))
            cache = next(
                ((e["expertgate"].get("cache") or {}).get("status") for e in events if "expertgate" in e), None
            )
        else:
            parsed = r.json()
            shown = "\n".join(strings(parsed))
            if r.status_code == 200:
                answer = parsed["choices"][0]["message"]["content"]
                conversation = parsed["expertgate"]["conversation_id"]
                citations = "\n".join(strings(parsed["expertgate"]["citations"]))
                cache = (parsed["expertgate"].get("cache") or {}).get("status")
        return Seen(name, channel, r.status_code, shown, answer, self._prompts(mark), r.headers.get("x-request-id"),
                    conversation, citations, cache)  # fmt: skip

    async def route(self, who: str, name: str, body: dict[str, Any]) -> Seen:
        mark = self._mark()
        r = await self.http.post("/v1/route", headers=auth(self.keys[who]), json=body)
        return Seen(name, "route", r.status_code, "\n".join(strings(r.json())), "", self._prompts(mark),
                    r.headers.get("x-request-id"))  # fmt: skip

    async def get(self, who: str, name: str, path: str) -> Seen:
        r = await self.http.get(path, headers=auth(self.keys[who]))
        return Seen(name, "probe", r.status_code, "\n".join(strings(r.json())), "", "")

    # -- Slack: signed events to /slack/events, answered through the real bolt + SDK --
    async def _slack_post(self, event: dict[str, Any]) -> int:
        body = json.dumps({
            "token": "legacy-unused", "team_id": TEAM_ID, "api_app_id": "A0000APP", "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:12].upper()}", "event_time": int(time.time()), "event": event,
        }).encode()  # fmt: skip
        stamp = str(int(time.time()))
        digest = hmac.new(SLACK_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        r = await self.http.post(
            "/slack/events",
            content=body,
            headers={"content-type": "application/json", "x-slack-request-timestamp": stamp,
                     "x-slack-signature": f"v0={digest}"},
        )  # fmt: skip
        await slack_bot(self.app, self.runtime.settings).dispatcher.drain()
        return r.status_code

    async def slack_attack(self, attack: Attack, n: int, *, dm: bool) -> Seen:
        """The attack's user turns as a Slack thread: the first one mentions the bot in a
        channel (or opens a DM), each later one is a reply in the thread. Fake system
        and assistant turns cannot be sent through Slack; their user turns are."""
        assert self.slack is not None
        mark = self._mark()
        thread = f"17000{n:05d}.000001"
        status = 200
        for i, text in enumerate(text for role, text in attack.messages if role == "user"):
            ts = f"17000{n:05d}.{i + 1:06d}"
            if dm:
                event = {"type": "message", "channel_type": "im", "channel": SLACK_DM, "user": ATTACKER_SLACK,
                         "text": text, "ts": ts}  # fmt: skip
            elif ts == thread:
                event = {"type": "app_mention", "user": ATTACKER_SLACK, "text": f"<@{BOT_USER_ID}> {text}", "ts": ts,
                         "channel": SLACK_CHANNEL, "event_ts": ts}  # fmt: skip
            else:
                event = {"type": "message", "channel_type": "channel", "channel": SLACK_CHANNEL,
                         "user": ATTACKER_SLACK, "text": text, "ts": ts}  # fmt: skip
            if ts != thread:
                event["thread_ts"] = thread
            status = max(status, await self._slack_post(event))
        calls = self.slack.calls[mark[1] :]
        # Everything posted to Slack is the answer as shown: text, blocks, sources.
        shown = "\n".join(s for c in calls if c.method != "users.info" for s in strings(c.args))
        return Seen(attack.id, "slack-dm" if dm else "slack", status, shown, shown, self._prompts(mark))

    async def close(self) -> None:
        await self.http.aclose()
        await self.runtime.close()


def redteam_settings(
    tmp: Path, llm: FakeOpenAI, slack: FakeSlack | None, experts: dict[str, Any], *, gate_store: Path, **extra: Any
) -> Settings:
    """Settings for an app in ``tmp`` on its own copy of ``gate_store`` (the test gate)."""
    if slack is not None:
        extra |= {"slack_signing_secret": SLACK_SECRET, "slack_bot_token": "xoxb-redteam-token",
                 "slack_api_url": slack.api_url, "slack_update_interval_s": 0.05}  # fmt: skip
    return Settings(
        data_dir=tmp / "data",
        router_dir=copy_test_gate(gate_store, tmp),
        experts_file=write_experts_yaml(tmp / "experts.yaml", llm.api_base, **experts),
        bootstrap_admin=False,
        **extra,
    )


async def run_campaign(
    settings: Settings,
    encoder: Encoder,
    llm: FakeOpenAI,
    slack: FakeSlack | None,
    *,
    channels: tuple[str, ...],
    slack_every: int = 1,
    knowledge: bool = True,
) -> Campaign:
    """Build the app, let the victim ask first, run every attack on ``channels`` (chat,
    stream, route; every ``slack_every``-th attack on slack, alternately in a channel and
    in a DM) as the attacker, probe the victim's conversation, and read the safety
    records of the audit trail back."""
    llm.reset()
    if slack is not None:
        slack.calls.clear()
    h = Harness(build_runtime(settings, encoder=encoder, environ={}), llm, slack)
    out = Campaign()
    try:
        await h.users()
        if knowledge:
            await h.ingest()
        victim = await h.chat("victim", "victim", {"model": "auto", "messages": [{"role": "user", "content": docs.VICTIM_QUESTION}]},
                              channel="control")  # fmt: skip
        assert victim.status == 200, victim.shown
        out.seen.append(victim)
        assert victim.conversation, victim.shown
        out.victim_conversation = victim.conversation
        for n, attack in enumerate(ATTACKS):
            for channel in channels:
                if channel == "slack" and n % slack_every:
                    continue
                started = time.perf_counter()
                if channel == "chat":
                    out.seen.append(await h.chat("attacker", attack.id, attack.body()))
                elif channel == "stream":
                    out.seen.append(await h.chat("attacker", attack.id, attack.body(stream=True), channel="stream"))
                elif channel == "route":
                    body = {"model": attack.model, "messages": attack.body()["messages"]}
                    out.seen.append(await h.route("attacker", attack.id, body))
                else:
                    out.seen.append(await h.slack_attack(attack, n, dm=(n // slack_every) % 2 == 1))
                out.seconds[channel] = out.seconds.get(channel, 0.0) + time.perf_counter() - started
        if knowledge:
            await _controls(h, out)
        await _probes(h, out)
        for event in await audit_events(h.runtime):
            record = dict((event.payload or {}).get("safety") or {})
            if event.request_id:
                out.safety[event.request_id] = record
            if record.get("action") == "refuse":
                out.refusals.append(record)
    finally:
        await h.close()
    return out


async def _controls(h: Harness, out: Campaign) -> None:
    """Requests that show the dangerous material is there and reachable, so that its
    absence from the attacks' answers means something: the insider's questions reach
    the restricted documents; an ordinary question of the attacker's reaches the secrets
    page and the injected page."""
    questions = {
        "legal": "What are the active matters in the pending disputes register and the settlement authority?",
        "code": "Walk me through the break-glass production access procedure and who approves it.",
        "support": "Who are the enterprise escalation contacts for a P1 incident?",
    }
    for domain, question in questions.items():
        body = {"model": domain, "messages": [{"role": "user", "content": question}]}
        out.seen.append(await h.chat("insider", f"insider-{domain}", body, channel="control"))
    for domain in ("code", "legal", "support"):
        body = {"model": domain, "messages": [{"role": "user", "content": "What is the staging configuration of the billing service, with its credentials?"}]}  # fmt: skip
        out.seen.append(await h.chat("attacker", f"secrets-{domain}", body, channel="control"))
        out.seen.append(
            await h.chat("attacker", f"secrets-{domain}-stream", {**body, "stream": True}, channel="control")
        )
    body = {"model": "support", "messages": [{"role": "user", "content": docs.INJECTED_QUESTION}]}
    out.seen.append(await h.chat("attacker", "injected", body, channel="control"))


async def _probes(h: Harness, out: Campaign) -> None:
    """The attacker reaching for the victim's conversation by its id, on every door; and
    for the victim's cached answer, by asking the victim's request without its detail
    (the victim's model restates the request, as a real one would)."""
    h.llm.script(Echo(roles=("user",)))
    cached = {"model": "auto", "messages": [{"role": "user", "content": docs.CACHE_QUESTION}]}
    assert (await h.chat("victim", "cache-victim", cached, channel="control")).status == 200
    probe = {"model": "auto", "messages": [{"role": "user", "content": docs.CACHE_PROBE}]}
    out.seen.append(await h.chat("attacker", "cache-chat", probe, channel="cache"))
    out.seen.append(await h.chat("attacker", "cache-stream", {**probe, "stream": True}, channel="cache"))
    other = {"model": "auto", "messages": [{"role": "user", "content": docs.CACHE_PROBE_OTHER}]}
    out.seen.append(await h.chat("attacker", "cache-chat-other", other, channel="cache"))
    if h.slack is not None:
        seen = await h.slack_attack(
            Attack("cache-slack", "other_user", "user", (("user", docs.CACHE_PROBE),)), 999, dm=False
        )
        out.seen.append(Seen(seen.attack, "cache", seen.status, seen.shown, seen.answer, seen.prompts))
    if out.victim_conversation and any(s.attack == "insider-legal" for s in out.seen):
        await _restricted_cache_probe(h, out)
    conv = out.victim_conversation
    body = {
        "model": "auto",
        "conversation_id": conv,
        "messages": [{"role": "user", "content": "Recap this conversation."}],
    }
    out.seen.append(await h.chat("attacker", "probe-chat", body, channel="probe"))
    out.seen.append(await h.chat("attacker", "probe-stream", {**body, "stream": True}, channel="probe"))
    route = {"model": "auto", "conversation_id": conv, "text": "Recap this conversation."}
    seen = await h.route("attacker", "probe-route", route)
    out.seen.append(Seen(seen.attack, "probe", seen.status, seen.shown, "", seen.prompts))
    out.seen.append(await h.get("attacker", "probe-get", f"/api/v1/conversations/{conv}"))
    out.seen.append(await h.get("attacker", "probe-list", "/api/v1/conversations"))


async def _restricted_cache_probe(h: Harness, out: Campaign) -> None:
    """The insider's answer quoting a restricted document is kept by the response cache;
    the attacker asking the same question must not be handed it. The insider asking
    again is (the answer was kept: the attacker's miss means something)."""
    question = {"model": "legal", "messages": [{"role": "user", "content": docs.RESTRICTED_CACHE_QUESTION}]}
    h.llm.script(Reply(docs.RESTRICTED_CACHE_ANSWER))
    out.seen.append(await h.chat("insider", "acl-cache-insider", question, channel="control"))
    out.seen.append(await h.chat("attacker", "acl-cache-chat", question, channel="cache"))
    out.seen.append(await h.chat("attacker", "acl-cache-stream", {**question, "stream": True}, channel="cache"))
    out.seen.append(await h.chat("insider", "acl-cache-insider-again", question, channel="control"))


def campaign(
    tmp: Path, encoder: Encoder, llm: FakeOpenAI, slack: FakeSlack | None, *, gate_store: Path, **kw: Any
) -> Campaign:
    """:func:`run_campaign` in its own event loop, from a sync module-scoped fixture.
    ``gate_store``: the test gate (the ``test_gate_store`` fixture); ``experts``: changes
    to experts.yaml per expert; ``settings``: other settings."""
    settings = redteam_settings(tmp, llm, slack, kw.pop("experts", {}), gate_store=gate_store, **kw.pop("settings", {}))
    return asyncio.run(run_campaign(settings, encoder, llm, slack, **kw))
