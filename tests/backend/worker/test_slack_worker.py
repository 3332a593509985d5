"""Scale-out mode: the API acks a Slack mention and enqueues it; a real Celery worker
process (its own runtime, same settings) answers in the thread.

The worker talks to the same local stand-ins as the API would: the fake Slack Web API
and the fake OpenAI server run in this test process on loopback.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from backend.api.slack import slack_bot
from backend.app import create_app
from backend.db.models import Conversation
from backend.runtime import build_runtime
from backend.settings import Settings
from backend.slack.dispatch import CeleryDispatcher
from router.encoder import Encoder
from tests.backend.slack.test_slack import ANA, SECRET, Bot, mention
from tests.conftest import make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.slack_api import FakeSlack
from tests.services import dedicated_redis
from tests.support.processes import celery_worker

pytestmark = pytest.mark.integration

BROKER = os.environ.get("EXPERTGATE_TEST_SLACK_REDIS", "redis://127.0.0.1:6379/12")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack(users={ANA: ("ana@example.com", "ana")}).start()
    yield server
    server.stop()


@pytest.fixture
def settings(pg_url: str, tmp_path: Path, llm: FakeOpenAI, slack: FakeSlack) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        redis_url=dedicated_redis(BROKER),
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
        slack_signing_secret=SECRET,  # type: ignore[arg-type]
        slack_bot_token="xoxb-test-token",  # type: ignore[arg-type]
        slack_api_url=slack.api_url,
        slack_update_interval_s=0,
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    assert settings.slack_bot_token is not None
    env = {
        "EXPERTGATE_DATA_DIR": str(settings.data_dir),
        "EXPERTGATE_DATABASE_URL": str(settings.database_url),
        "EXPERTGATE_REDIS_URL": BROKER,
        "EXPERTGATE_EXPERTS_FILE": str(settings.experts_file),
        "EXPERTGATE_SLACK_SIGNING_SECRET": SECRET,
        "EXPERTGATE_SLACK_BOT_TOKEN": settings.slack_bot_token.get_secret_value(),
        "EXPERTGATE_SLACK_API_URL": settings.slack_api_url,
        "EXPERTGATE_SLACK_UPDATE_INTERVAL_S": "0",
    }
    with celery_worker(env, tmp_path / "worker.log", "egslack") as log:
        yield log


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


@pytest.fixture
async def bot(settings: Settings, encoder: Encoder) -> AsyncIterator[Bot]:
    runtime = build_runtime(settings, encoder=encoder, environ={})
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield Bot(http, app, runtime)
    await runtime.close()


async def test_a_mention_is_answered_by_a_celery_worker(
    bot: Bot, worker: Path, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    await make_key(bot.runtime, "ana@example.com")
    llm.script(Reply("Use git rebase -i HEAD~3."))
    started = time.monotonic()
    r = await bot.event(mention("how do I squash my last three git commits into one?", ts="1700000100.000001"))
    assert r.status_code == 200
    assert isinstance(slack_bot(bot.app, bot.runtime.settings).dispatcher, CeleryDispatcher)
    # The API only enqueued: nothing was said to Slack from this process.
    assert slack.of("chat.postMessage") == []

    deadline = started + 180  # the worker loads the gate and experts on its first job
    while not any("blocks" in u for u in slack.of("chat.update")):
        if time.monotonic() > deadline:
            pytest.fail("no answer from the worker:\n" + tail(worker))
        await asyncio.sleep(0.5)
    final = slack.of("chat.update")[-1]
    assert final["text"].startswith(":label: *code* expert") and "Use git rebase -i HEAD~3." in final["text"]
    assert slack.of("chat.postMessage")[0]["thread_ts"] == "1700000100.000001"
    async with bot.runtime.db.session() as s:  # written by the worker, read here
        conv = await s.scalar(select(Conversation))
    assert conv is not None and conv.channel == "slack"
