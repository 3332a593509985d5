"""Slack replays and malformed bodies across two API replicas sharing PostgreSQL (issue
25, item 10): a signed request runs once whichever replica each copy reaches, and no
body is a 500 on PostgreSQL either (where an event id over 64 characters would fail the
claim's INSERT). Real slack-bolt, whose client talks to the Slack stand-in
(tests/fakes/slack_api.py); the replicas' dispatcher records the jobs handed over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from backend.app import create_app
from backend.db.models import SlackEvent
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from backend.slack.bolt import build_bolt_app
from backend.slack.types import AskJob
from backend.slack.wiring import SlackBot, build_service
from router.encoder import Encoder
from tests.backend.slack.test_faults_slack import JSON, MALFORMED, MENTION, SECRET, Recorder, command, event, signed
from tests.conftest import write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@dataclass
class Replica:
    http: httpx.AsyncClient
    app: FastAPI
    runtime: Runtime

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post("/slack/events", content=body, headers=headers)


@pytest.fixture
def jobs() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
async def replicas(
    pg_url: str,
    tmp_path: Path,
    gate_dir: Path,
    llm: FakeOpenAI,
    encoder: Encoder,
    fake_slack: FakeSlack,
    jobs: Recorder,
) -> AsyncIterator[tuple[Replica, Replica]]:
    """Two API replicas, each with its own runtime, pool and bolt app, on one database;
    both hand their jobs to ``jobs``."""
    fake_slack.reset()
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        database_url=pg_url,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
        slack_signing_secret=SECRET,  # type: ignore[arg-type]
        slack_bot_token="xoxb-test-token",  # type: ignore[arg-type]
        slack_api_url=fake_slack.api_url,
        slack_update_interval_s=0,
        slack_dispatch="inline",
    )
    made: list[Replica] = []
    for _ in range(2):
        runtime = build_runtime(settings, encoder=encoder, environ={})
        app = create_app(settings, runtime)
        app.state.runtime = runtime
        service = build_service(settings, runtime)
        bolt = build_bolt_app(
            client=service.client, signing_secret=SECRET, db=runtime.db, registry=runtime.registry, dispatcher=jobs
        )
        app.state.slack = SlackBot(bolt, service, jobs)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        made.append(Replica(http, app, runtime))
    yield made[0], made[1]
    for replica in made:
        await replica.http.aclose()
        await replica.runtime.close()


async def test_a_slash_command_replayed_to_another_replica_runs_once(
    replicas: tuple[Replica, Replica], jobs: Recorder
) -> None:
    a, b = replicas
    body = command("legal what is our notice period?")
    headers = signed(body)
    first = await a.post(body, headers)
    replays = [await b.post(body, headers), await a.post(body, {**headers, "x-slack-retry-num": "1"})]
    assert first.status_code == 200 and first.text == "Asking…"
    assert [(r.status_code, r.text) for r in replays] == [(200, ""), (200, "")]
    assert jobs.jobs == [AskJob("command", "C0000GEN", "U0000ANA", "what is our notice period?", expert="legal")]


async def test_a_command_whose_hand_off_failed_runs_on_the_other_replica(
    replicas: tuple[Replica, Replica], jobs: Recorder
) -> None:
    a, b = replicas
    body = command("why?")
    headers = signed(body)
    jobs.fail_next = True
    assert (await a.post(body, headers)).status_code == 500
    assert (await b.post(body, headers)).text == "Asking…"
    assert (await a.post(body, headers)).text == ""
    assert len(jobs.jobs) == 1


async def test_an_event_retried_to_another_replica_is_answered_once(
    replicas: tuple[Replica, Replica], jobs: Recorder
) -> None:
    a, b = replicas
    first_body = event(MENTION, event_id="Ev0REPLICA1")
    # Slack's retry is the same event id, signed again later (the body differs too).
    retry_body = event(MENTION, event_id="Ev0REPLICA1", event_time=1)
    assert (await a.post(first_body, signed(first_body, JSON))).status_code == 200
    retry = await b.post(retry_body, {**signed(retry_body, JSON), "x-slack-retry-num": "1"})
    assert retry.status_code == 200 and len(jobs.jobs) == 1


async def test_no_malformed_body_is_a_500_on_postgres(replicas: tuple[Replica, Replica], jobs: Recorder) -> None:
    a, _ = replicas
    for name, body, content_type in MALFORMED:
        unsigned = await a.post(body, {"content-type": content_type})
        r = await a.post(body, signed(body, content_type))
        assert (unsigned.status_code, r.status_code) == (401, 400), (name, r.text)
        assert r.json()["error"]["code"] == "slack_request_malformed", name
    assert jobs.jobs == []
    async with a.runtime.db.session() as session:  # refused requests hold no claim
        assert await session.scalar(select(func.count()).select_from(SlackEvent)) == 0
    # 64 characters is the longest id the claim holds (65 was refused above).
    longest = event(MENTION, event_id="Ev" + "L" * 62)
    assert (await a.post(longest, signed(longest, JSON))).status_code == 200
    assert len(jobs.jobs) == 1
