"""The CLI on PostgreSQL: readers never migrate; router changes are audited and published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from backend.cli.main import main
from backend.db.session import migrate
from backend.settings import to_async_url, to_sync_url
from router.artifacts import bundled_default


def head_revision() -> str:
    """This release's newest migration (the tests must not pin it: every release adds one)."""
    from alembic.script import ScriptDirectory

    from backend.db.session import alembic_config

    (head,) = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db")).get_heads()
    return str(head)


@pytest.fixture
def pg_env(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EXPERTGATE_DATABASE_URL", pg_url)
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path / "data"))
    for name in ("EXPERTGATE_SECRET_KEY", "EXPERTGATE_ROUTER_DIR"):
        monkeypatch.delenv(name, raising=False)
    return pg_url


def table_names(pg_url: str) -> set[str]:
    engine = create_engine(to_sync_url(to_async_url(pg_url)))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_readers_leave_an_empty_database_empty_until_migrate(
    pg_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["audit", "verify"], ["audit", "export"], ["keys", "list"], ["quota", "list"]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "has no expertgate schema" in err and "`expertgate migrate`" in err
        assert "postgresql+psycopg://postgres@127.0.0.1" in err
    assert table_names(pg_env) == set()

    assert main(["migrate"]) == 0
    assert main(["audit", "verify"]) == 0
    assert "intact: 0 events" in capsys.readouterr().out
    assert main(["keys", "list"]) == 0


def test_a_reader_on_a_schema_behind_head_changes_nothing(
    pg_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate(to_async_url(pg_env), "0009")
    before = table_names(pg_env)
    assert main(["audit", "verify"]) == 1
    assert f"at schema revision 0009, behind this release's {head_revision()}" in capsys.readouterr().err
    assert table_names(pg_env) == before
    engine = create_engine(to_sync_url(to_async_url(pg_env)))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0009"
    engine.dispose()


def test_router_changes_from_the_cli_are_published_in_sql_and_audited(
    pg_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = bundled_default()
    assert main(["router", "promote", str(gate)]) == 0
    assert main(["router", "shadow", str(gate)]) == 0
    capsys.readouterr()
    engine = create_engine(to_sync_url(to_async_url(pg_env)))
    with engine.connect() as conn:
        pointers: dict[str, str] = dict(
            conn.execute(text("SELECT name, version FROM artifact_pointers WHERE kind = 'router'")).tuples().all()
        )
    engine.dispose()
    assert pointers == {"active": gate, "shadow": gate}

    assert main(["audit", "export", "--format", "jsonl"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["action"], e["payload"], e["channel"]) for e in events] == [
        ("router.promoted", {"version": gate, "previous": gate}, "cli"),
        ("router.shadow", {"version": gate}, "cli"),
        # The export is audited before its first line, from the CLI as from the API.
        ("audit.exported", {"format": "jsonl", "filter": {}}, "cli"),
    ]
    assert main(["audit", "verify"]) == 0
