"""The Celery app factory, error handling per ERROR_TABLE, and tasks run eagerly on SQLite."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from backend import taskqueue
from backend.errors import BadRequest, NotFound
from backend.settings import Settings, SettingsError
from backend.worker import tasks
from backend.worker.app import beat_schedule, make_celery
from backend.worker.context import WorkerContext
from backend.worker.errors import Handling, TaskFailed, backoff_s, classify
from experts.errors import LLMTimeout, LLMUnavailable


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/14", **extra)


def _eager(settings: Settings, policy: tasks.RetryPolicy | None = None) -> Any:
    app = make_celery(settings, retry=policy)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    return app


def test_factory_needs_redis(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="EXPERTGATE_REDIS_URL"):
        make_celery(Settings(data_dir=tmp_path))


def test_factory_registers_named_tasks_and_json_only(tmp_path: Path) -> None:
    app = make_celery(_settings(tmp_path))
    assert {taskqueue.RETENTION, taskqueue.TRAIN, taskqueue.INGEST} <= set(app.tasks)
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_acks_late is True
    assert app.conf.broker_url == "redis://127.0.0.1:6379/14"


def test_beat_schedules_retention_only_when_configured(tmp_path: Path) -> None:
    assert beat_schedule(_settings(tmp_path)) == {}
    schedule = beat_schedule(_settings(tmp_path, audit_retention_days=30))
    assert schedule["audit-retention"]["task"] == taskqueue.RETENTION
    assert schedule["audit-retention"]["kwargs"] == {"days": 30}


@pytest.mark.parametrize(
    ("exc", "handling", "code"),
    [
        (NotFound("no such job", code="ingest_job_not_found"), Handling.EXPECTED, "ingest_job_not_found"),
        (BadRequest("bad"), Handling.EXPECTED, "invalid_request"),
        (LLMTimeout("legal", "slow"), Handling.TRANSIENT, "expert_timeout"),
        (LLMUnavailable("legal", "down"), Handling.TRANSIENT, "expert_unavailable"),
        (ConnectionRefusedError("pg down"), Handling.TRANSIENT, "connection_error"),
        (ValueError("expert x has no examples"), Handling.EXPECTED, "invalid_request"),
        (KeyError("bug"), Handling.UNEXPECTED, "internal_error"),
    ],
)
def test_classify_follows_error_table(exc: Exception, handling: Handling, code: str) -> None:
    assert classify(exc) == (handling, code)


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_s(n, base=2.0, cap=60.0, rng=rng) for n in range(8)]
    assert 1.5 <= delays[0] <= 2.5
    assert 6.0 <= delays[2] <= 10.0
    assert all(d <= 75.0 for d in delays)
    assert delays[7] >= 45.0


def test_retention_task_purges_through_the_service(tmp_path: Path) -> None:
    app = _eager(_settings(tmp_path, audit_retention_days=30))
    result = app.tasks[taskqueue.RETENTION].delay().get()
    assert result["purged"] == 0 and result["days"] == 30
    db = sqlite3.connect(tmp_path / "expertgate.db")
    actions = [r[0] for r in db.execute("SELECT action FROM audit_events ORDER BY seq")]
    assert actions == ["audit.retention", "audit.retention.finished"]


def test_expected_error_fails_once_with_its_code(tmp_path: Path) -> None:
    app = _eager(_settings(tmp_path))  # no retention period configured
    with pytest.raises(TaskFailed) as info:
        app.tasks[taskqueue.RETENTION].delay().get()
    assert info.value.code == "invalid_request"


def test_transient_error_is_retried_then_succeeds(tmp_path: Path) -> None:
    calls: list[int] = []

    def flaky(ctx: WorkerContext) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise LLMUnavailable("legal", "connection refused")
        return "done"

    app = make_celery(_settings(tmp_path))
    # Eager without propagation: Celery re-applies a Retry in process, as a worker would.
    app.conf.task_always_eager = True
    policy = tasks.RetryPolicy(max_retries=5, base_s=0.01, cap_s=0.01)
    task = app.task(name="test.flaky", bind=True, shared=False)(
        tasks._adapter(WorkerContext(_settings(tmp_path)), flaky, policy)
    )
    assert task.delay().get() == "done"
    assert len(calls) == 3


def test_transient_error_gives_up_after_max_retries(tmp_path: Path) -> None:
    calls: list[int] = []

    def down(ctx: WorkerContext) -> str:
        calls.append(1)
        raise LLMUnavailable("legal", "connection refused")

    app = make_celery(_settings(tmp_path))
    # Eager without propagation: Celery re-applies a Retry in process, as a worker would.
    app.conf.task_always_eager = True
    policy = tasks.RetryPolicy(max_retries=2, base_s=0.01, cap_s=0.01)
    task = app.task(name="test.down", bind=True, shared=False)(
        tasks._adapter(WorkerContext(_settings(tmp_path)), down, policy)
    )
    with pytest.raises(TaskFailed) as info:
        task.delay().get()
    assert info.value.code == "expert_unavailable"
    assert len(calls) == 3


def test_cli_worker_and_beat_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.cli.main import build_parser, main
    from backend.cli.worker import cmd_beat, cmd_worker

    args = build_parser().parse_args(["worker", "--pool", "solo", "--concurrency", "3"])
    assert args.func is cmd_worker and args.pool == "solo" and args.concurrency == 3
    assert build_parser().parse_args(["beat"]).func is cmd_beat
    # Without a broker the commands stop with a message naming the variable.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXPERTGATE_REDIS_URL", raising=False)
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path))
    assert main(["worker"]) == 2
    assert main(["beat"]) == 2
    assert "EXPERTGATE_REDIS_URL" in capsys.readouterr().err
