"""/slack/events under faulty and hostile input (issue 25, item 10), on the real app with
the real slack-bolt: a body that is not what Slack sends is never a 500 (unsigned: 401,
signed: 400, too large: 413, each in the error table's shape), and a signed request
replayed within the five minutes its signature is accepted runs once.

Hermetic: SQLite, bolt's client talks to the Slack stand-in on loopback
(tests/fakes/slack_api.py), and the dispatcher records jobs instead of running them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

from backend.app import create_app
from backend.runtime import Runtime
from backend.settings import Settings
from backend.slack.bolt import build_bolt_app
from backend.slack.types import AskJob, FeedbackJob, SlackJob
from backend.slack.wiring import SlackBot, build_service
from tests.conftest import write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import TEAM_ID, FakeSlack

pytestmark = pytest.mark.faults

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
JSON, FORM = "application/json", "application/x-www-form-urlencoded"


class Recorder:
    """A dispatcher that keeps the jobs; ``fail_next`` makes the next hand-off raise."""

    def __init__(self) -> None:
        self.jobs: list[SlackJob] = []
        self.fail_next = False

    async def submit(self, job: SlackJob) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("broker unreachable")
        self.jobs.append(job)

    async def drain(self) -> None:
        return None


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, fake_slack: FakeSlack) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
        slack_signing_secret=SECRET,  # type: ignore[arg-type]
        slack_bot_token="xoxb-test-token",  # type: ignore[arg-type]
        slack_api_url=fake_slack.api_url,
        slack_dispatch="inline",
    )


@pytest.fixture
def jobs() -> Recorder:
    return Recorder()


@pytest.fixture
async def http(runtime: Runtime, jobs: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    service = build_service(runtime.settings, runtime)
    bolt = build_bolt_app(
        client=service.client, signing_secret=SECRET, db=runtime.db, registry=runtime.registry, dispatcher=jobs
    )
    app.state.slack = SlackBot(bolt, service, jobs)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


def signed(body: bytes, content_type: str = FORM, *, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    """Headers signed as Slack signs: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")."""
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"content-type": content_type, "x-slack-request-timestamp": stamp, "x-slack-signature": f"v0={digest}"}


def command(text: str, trigger_id: str = "1.2.3") -> bytes:
    form = {
        "token": "legacy-unused", "team_id": TEAM_ID, "channel_id": "C0000GEN", "channel_name": "general",
        "user_id": "U0000ANA", "user_name": "ana", "command": "/ask", "text": text,
        "response_url": "https://hooks.slack.invalid/commands/1", "trigger_id": trigger_id,
    }  # fmt: skip
    return urlencode(form).encode()


def event(inner: dict[str, Any], **envelope: Any) -> bytes:
    body = {"token": "legacy-unused", "team_id": TEAM_ID, "api_app_id": "A0000APP", "type": "event_callback",
            "event_id": "Ev0FAULTS01", "event_time": int(time.time()), "event": inner, **envelope}  # fmt: skip
    return json.dumps(body).encode()


def click(action: dict[str, Any], **payload: Any) -> bytes:
    body = {"type": "block_actions", "team": {"id": TEAM_ID}, "user": {"id": "U0000ANA"}, "api_app_id": "A0000APP",
            "channel": {"id": "C0000GEN"}, "message": {"ts": "1.1", "thread_ts": "1.0"}, "trigger_id": "1.2.3",
            "actions": [action], **payload}  # fmt: skip
    return urlencode({"payload": json.dumps(body)}).encode()


MENTION = {"type": "app_mention", "user": "U0000ANA", "text": "<@UBOT0001> hi", "ts": "1.000100", "channel": "C0000GEN"}
HELPFUL = {"type": "button", "action_id": "feedback_helpful", "value": "req-1", "block_id": "b", "action_ts": "1"}

# (name, body, content type): none of these is a request Slack would send.
MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", FORM),
    ("blank", b" \r\n ", JSON),
    ("binary", bytes(range(256)), "application/octet-stream"),
    ("invalid UTF-8 in JSON", b'{"type": "event_callback", "x": "\xff\xfe"}', JSON),
    ("truncated JSON", event(MENTION)[:-7], JSON),
    ("JSON array", b"[1, 2, 3]", JSON),
    ("JSON null", b"null", JSON),
    ("JSON string", b'"event_callback"', JSON),
    ("JSON nested too deep", b"[" * 100_000 + b"]" * 100_000, JSON),
    ("object nested too deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, JSON),
    ("object without a type", b"{}", JSON),
    ("type not a string", b'{"type": 5}', JSON),
    ("event not an object", event(MENTION, event="app_mention"), JSON),
    ("event without a type", event({"user": "U1"}), JSON),
    ("event_id missing", event(MENTION, event_id=None), JSON),
    ("event_id too long for the claim", event(MENTION, event_id="Ev" + "X" * 63), JSON),
    ("mention without a channel", event({k: v for k, v in MENTION.items() if k != "channel"}), JSON),
    ("mention user not a string", event({**MENTION, "user": ["U1"]}), JSON),
    ("team of the wrong type", event(MENTION, team_id=None, team=5), JSON),
    ("form that is not a command", b"hello=world&a=b", FORM),
    ("plain text", b"just some text", "text/plain"),
    ("payload not JSON", b"payload=%7Bnot-json", FORM),
    ("payload a JSON list", b"payload=%5B1%5D", FORM),
    ("payload without a type", b"payload=%7B%7D", FORM),
    ("click without a user", click(HELPFUL, user=None), FORM),
    ("click without an action id", click({"type": "button", "value": "req-1"}), FORM),
    ("command without a channel", command("hi").replace(b"channel_id=C0000GEN&", b""), FORM),
    ("block actions not a list", click(HELPFUL, actions={"action_id": "feedback_helpful"}), FORM),
    ("no block actions", click(HELPFUL, actions=[]), FORM),
]


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"] and set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(("body", "content_type"), [(b, c) for _, b, c in MALFORMED], ids=[n for n, _, _ in MALFORMED])
async def test_a_malformed_body_that_is_not_signed_gets_401_before_it_is_read(
    http: httpx.AsyncClient, jobs: Recorder, body: bytes, content_type: str
) -> None:
    now = int(time.time())
    good = signed(body, content_type)
    variants: list[dict[str, Any]] = [  # str or raw bytes values
        {"content-type": content_type},  # no signature at all
        signed(body, content_type, secret="not-the-secret"),
        signed(body, content_type, ts=now - 6 * 60),  # stale: outside the replay window
        {**good, "x-slack-request-timestamp": "soon"},
        {**good, "x-slack-request-timestamp": "9" * 5000},  # int() refuses 4,300+ digits
        {**good, "x-slack-request-timestamp": "١٢٣٤٥٦٧٨٩٠".encode()},  # digits, but not ASCII ones
        {**good, "x-slack-signature": ("v0=" + "é" * 64).encode("latin-1")},  # compare_digest refuses non-ASCII
        {**good, "x-slack-signature": b"v0=\xff\xfe"},
    ]
    for headers in variants:
        assert_error(await http.post("/slack/events", content=body, headers=headers), 401, "slack_signature_invalid")
    assert jobs.jobs == []


@pytest.mark.parametrize(("body", "content_type"), [(b, c) for _, b, c in MALFORMED], ids=[n for n, _, _ in MALFORMED])
async def test_a_malformed_body_that_is_signed_gets_400(
    http: httpx.AsyncClient, jobs: Recorder, body: bytes, content_type: str
) -> None:
    r = await http.post("/slack/events", content=body, headers=signed(body, content_type))
    assert_error(r, 400, "slack_request_malformed")
    assert jobs.jobs == []


async def test_a_huge_body_gets_413_signed_or_not(http: httpx.AsyncClient, jobs: Recorder) -> None:
    body = command("x" * 2_000_000)
    for headers in ({"content-type": FORM}, signed(body)):
        assert_error(await http.post("/slack/events", content=body, headers=headers), 413, "request_too_large")
    assert jobs.jobs == []


async def test_random_and_truncated_bodies_never_get_a_500(http: httpx.AsyncClient, jobs: Recorder) -> None:
    rng = random.Random(25)
    bodies = [rng.randbytes(rng.randint(1, 400)) for _ in range(60)]
    for valid in (event(MENTION), click(HELPFUL), command("legal what is our notice period?")):
        bodies += [valid[:cut] for cut in range(1, len(valid), 9)]
    for i, body in enumerate(bodies):
        content_type = rng.choice([JSON, FORM, "text/plain", ""])
        unsigned = await http.post("/slack/events", content=body, headers={"content-type": content_type})
        assert unsigned.status_code == 401
        r = await http.post("/slack/events", content=body, headers=signed(body, content_type))
        # A truncated form can still be a whole command (cut inside its last field): it runs.
        assert r.status_code in (200, 400), (i, body[:80], r.status_code, r.text)
        if r.status_code == 400:
            assert r.json()["error"]["code"] == "slack_request_malformed"


async def test_slacks_unsigned_ssl_check_is_answered_and_does_nothing(http: httpx.AsyncClient, jobs: Recorder) -> None:
    r = await http.post("/slack/events", content=b"ssl_check=1&token=legacy", headers={"content-type": FORM})
    assert r.status_code == 200 and r.text == "" and jobs.jobs == []


async def test_a_replayed_slash_command_runs_once(http: httpx.AsyncClient, jobs: Recorder) -> None:
    body = command("legal what is our notice period?")
    headers = signed(body)
    first = await http.post("/slack/events", content=body, headers=headers)
    replay = await http.post("/slack/events", content=body, headers=headers)
    retry = await http.post("/slack/events", content=body, headers={**headers, "x-slack-retry-num": "1"})
    assert first.status_code == 200 and first.text == "Asking…"
    assert replay.status_code == retry.status_code == 200 and replay.text == retry.text == ""
    assert jobs.jobs == [AskJob("command", "C0000GEN", "U0000ANA", "what is our notice period?", expert="legal")]


async def test_the_same_command_typed_again_is_a_new_request(http: httpx.AsyncClient, jobs: Recorder) -> None:
    """Slack gives each invocation its own trigger_id, so its own signature."""
    for trigger_id in ("1.2.3", "1.2.4"):
        body = command("why?", trigger_id=trigger_id)
        assert (await http.post("/slack/events", content=body, headers=signed(body))).text == "Asking…"
    assert len(jobs.jobs) == 2


async def test_a_replayed_button_click_runs_once(http: httpx.AsyncClient, jobs: Recorder) -> None:
    body = click(HELPFUL)
    headers = signed(body)
    for _ in range(3):
        assert (await http.post("/slack/events", content=body, headers=headers)).status_code == 200
    assert jobs.jobs == [FeedbackJob("C0000GEN", "U0000ANA", "req-1", "up", None, "1.0")]


async def test_a_command_whose_hand_off_failed_runs_when_sent_again(http: httpx.AsyncClient, jobs: Recorder) -> None:
    body = command("why?")
    headers = signed(body)
    jobs.fail_next = True
    assert (await http.post("/slack/events", content=body, headers=headers)).status_code == 500
    assert (await http.post("/slack/events", content=body, headers=headers)).text == "Asking…"
    assert len(jobs.jobs) == 1


async def test_a_command_that_mentions_payload_is_asked(http: httpx.AsyncClient, jobs: Recorder) -> None:
    """bolt alone reads any form containing "payload" as interactivity and drops it."""
    body = command("what is the max payload size?")
    assert (await http.post("/slack/events", content=body, headers=signed(body))).text == "Asking…"
    assert [j.text for j in jobs.jobs if isinstance(j, AskJob)] == ["what is the max payload size?"]


BAD_VALUES: list[Any] = [None, 5, 1.5, True, "", "x", [], [1], {}, {"a": 1}]


def broken(value: Any) -> Iterator[Any]:
    """``value`` with one field, at any depth, removed or replaced by a value of another type."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield {k: v for k, v in value.items() if k != key}
            for bad in BAD_VALUES:
                yield {**value, key: bad}
            for part in broken(inner):
                yield {**value, key: part}
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            for part in broken(inner):
                yield [*value[:i], part, *value[i + 1 :]]


def event_envelope(inner: dict[str, Any]) -> dict[str, Any]:
    return json.loads(event(inner))  # type: ignore[no-any-return]


async def test_every_field_of_an_event_or_a_click_broken_never_gets_a_500(
    http: httpx.AsyncClient, jobs: Recorder
) -> None:
    """Each field Slack sends, at any depth, missing or of another type: the body is refused
    (400), or not handled (404), or runs; never a 500. The class of failure, not a list."""
    dm = {"type": "message", "channel_type": "im", "user": "U0000ANA", "text": "hi", "ts": "1.2", "channel": "D1"}
    home = {"type": "app_home_opened", "user": "U0000ANA", "tab": "home"}
    clicked = json.loads(parse_qs(click(HELPFUL).decode())["payload"][0])
    select = {"type": "static_select", "action_id": "feedback_expert", "block_id": "b", "action_ts": "2",
              "selected_option": {"value": "req-1|legal", "text": {"type": "plain_text", "text": "legal"}}}  # fmt: skip
    cases: list[tuple[bytes, str]] = []
    for n, body in enumerate(b for inner in (MENTION, dm, home) for b in broken(event_envelope(inner))):
        if isinstance(body.get("event_id"), str):
            body["event_id"] = f"Ev{n:08d}"  # a new delivery each, or all but one are dropped as retries
        cases.append((json.dumps(body).encode(), JSON))
    for payload in (clicked, {**clicked, "actions": [select]}):
        cases += [(urlencode({"payload": json.dumps(p)}).encode(), FORM) for p in broken(payload)]
    statuses: dict[int, int] = {}
    for body, content_type in cases:
        r = await http.post("/slack/events", content=body, headers=signed(body, content_type))
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code in (200, 400, 404), (body[:300], r.status_code, r.text)
        if r.status_code >= 400:
            code = r.json()["error"]["code"]
            assert code == ("slack_request_malformed" if r.status_code == 400 else "slack_request_unhandled")
    assert statuses[400] > 100 and statuses[200] > 100  # both paths were exercised
