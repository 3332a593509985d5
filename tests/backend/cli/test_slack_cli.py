"""`expertgate slack`: Socket Mode refuses to start without its tokens, naming them, and
builds bolt's Socket Mode handler when they are set (no connection to Slack here)."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from backend.cli.main import main
from backend.cli.slack import app_token, socket_handler
from backend.settings import Settings
from backend.slack.bolt import build_bolt_app, parse_command
from backend.slack.errors import SlackNotConfigured
from backend.slack.types import AskJob, FeedbackJob, HomeJob, SlackJob, job_from_payload, job_to_payload
from experts.registry import ExpertRegistry
from tests.conftest import ROOT


def test_socket_mode_without_an_app_token_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXPERTGATE_SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.delenv("EXPERTGATE_SLACK_APP_TOKEN", raising=False)
    assert main(["slack", "--socket"]) == 2
    assert "EXPERTGATE_SLACK_APP_TOKEN" in capsys.readouterr().err


def test_socket_mode_without_a_bot_token_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EXPERTGATE_SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("EXPERTGATE_SLACK_APP_TOKEN", "xapp-test")
    assert main(["slack", "--socket"]) == 2
    assert "EXPERTGATE_SLACK_BOT_TOKEN" in capsys.readouterr().err


def test_plain_slack_command_explains_http_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slack"]) == 2
    assert "/slack/events" in capsys.readouterr().err


async def test_socket_mode_handler_builds_from_settings() -> None:
    settings = Settings(slack_bot_token="xoxb-test", slack_app_token="xapp-1-test")  # type: ignore[arg-type]
    bolt = build_bolt_app(
        client=AsyncWebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/"),
        signing_secret="",
        db=None,  # type: ignore[arg-type]  # not reached: nothing is dispatched here
        registry=ExpertRegistry.from_yaml(ROOT / "experts" / "experts.yaml"),
        dispatcher=None,  # type: ignore[arg-type]
    )
    handler = socket_handler(app_token(settings), bolt)
    assert handler.app is bolt and handler.app_token == "xapp-1-test"
    await handler.close_async()
    with pytest.raises(SlackNotConfigured, match="EXPERTGATE_SLACK_APP_TOKEN"):
        app_token(Settings(slack_bot_token="xoxb-test"))  # type: ignore[arg-type]


def test_ask_command_parses_an_optional_expert() -> None:
    experts = frozenset({"code", "legal"})
    assert parse_command("legal what is our notice period?", experts) == ("legal", "what is our notice period?")
    assert parse_command("Legal  notice?", experts) == ("legal", "notice?")
    assert parse_command("what is legal here?", experts) == (None, "what is legal here?")
    assert parse_command("legal", experts) == (None, "legal")  # a lone word is a question


def test_jobs_survive_the_celery_payload() -> None:
    jobs: list[SlackJob] = [
        AskJob("thread", "C1", "U1", "why?", ts="2.0", thread_ts="1.0"),
        FeedbackJob("C1", "U1", "req-1", "down", "legal", "1.0"),
        HomeJob("U1"),
    ]
    assert [job_from_payload(job_to_payload(j)) for j in jobs] == jobs
