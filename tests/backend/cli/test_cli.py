"""The `expertgate` CLI, run in-process as a user would call it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.cli.main import main


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EXPERTGATE_DATABASE_URL", raising=False)
    return tmp_path / "data"


def test_keys_create_prints_the_key_alone_on_the_last_line(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--user", "Erin@Example.com", "--role", "admin"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("eg-") and " " not in lines[-1] and len(lines[-1]) > 40
    assert "erin@example.com" in lines[0]
    # A second key for the same user is a different key.
    assert main(["keys", "create", "--user", "erin@example.com"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] != lines[-1]


def test_keys_create_rejects_a_bad_email(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--user", "not-an-email"]) == 1
    assert "not an email address" in capsys.readouterr().err


def test_route_prints_the_decision_as_json(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "my docker build fails with exit code 137"]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["expert"] == "code"
    assert set(decision["probabilities"]) == {"code", "legal", "support", "general"}
    assert decision["reason"] == "routed" and decision["router_version"]


def test_bad_setting_stops_with_the_variable_named(data_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EXPERTGATE_PORT", "99999")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "EXPERTGATE_PORT" in err and "less than or equal to 65535" in err


def test_bad_experts_file_stops_with_the_field_named(data_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "experts.yaml"
    bad.write_text("experts:\n  general:\n    description: too short\n")
    monkeypatch.setenv("EXPERTGATE_EXPERTS_FILE", str(bad))
    assert main(["route", "hello"]) == 1
    err = capsys.readouterr().err
    assert "experts.general.description" in err and "experts.general.llm" in err


def test_eval_answers_runs_the_answer_eval_from_the_checkout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["eval", "answers", "--", "--limit", "0"])  # the eval's own argument check
    assert exited.value.code == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
