"""CLI commands open the database one way: writers migrate it, readers never do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grimp
import pytest
from sqlalchemy import create_engine, inspect

from backend.cli.main import main
from backend.db.session import migrate

READERS = [
    ["audit", "verify"],
    ["audit", "export"],
    ["audit", "head"],
    ["audit", "anchor"],
    ["keys", "list"],
    ["quota", "list"],
]


def head_revision() -> str:
    """This release's newest migration (the tests must not pin it: every release adds one)."""
    from alembic.script import ScriptDirectory

    from backend.db.session import alembic_config

    (head,) = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db")).get_heads()
    return str(head)


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EXPERTGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXPERTGATE_SECRET_KEY", raising=False)
    return tmp_path / "data"


def tables(path: Path) -> set[str]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("argv", READERS, ids=" ".join)
def test_a_reader_on_a_fresh_install_creates_nothing_and_names_migrate(
    argv: list[str], data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "has no expertgate schema" in err and "run `expertgate migrate` first" in err
    # Not even an empty SQLite file (nor the data directory) is left behind.
    assert not data_env.exists()


def test_a_reader_on_a_schema_behind_head_leaves_it_as_it_is(
    data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_file = data_env / "expertgate.db"
    migrate(f"sqlite+aiosqlite:///{db_file}", "0008")
    before = tables(db_file)
    assert "audit_outbox" not in before  # added by 0009

    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert f"at schema revision 0008, behind this release's {head_revision()}" in err and "`expertgate migrate`" in err
    assert tables(db_file) == before
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0008",)]


def test_a_reader_on_a_schema_from_a_newer_release_says_so(
    data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_file = data_env / "expertgate.db"
    migrate(f"sqlite+aiosqlite:///{db_file}")
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    assert main(["keys", "list"]) == 1
    assert "at schema revision 0099, which this release does not know" in capsys.readouterr().err


def test_readers_work_once_migrated_and_writers_migrate_by_themselves(
    data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert main(["audit", "verify"]) == 0
    assert "intact: 0 events" in capsys.readouterr().out
    assert main(["keys", "list"]) == 0
    assert main(["quota", "list"]) == 0
    capsys.readouterr()

    # A writer on a fresh install still migrates first, as it always did.
    fresh = data_env.parent / "fresh"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPERTGATE_DATA_DIR", str(fresh))
        assert main(["keys", "create", "--user", "ops@example.com", "--role", "admin"]) == 0
        assert "audit_events" in tables(fresh / "expertgate.db")
        assert main(["audit", "verify"]) == 0
        assert "intact: 1 events" in capsys.readouterr().out


def test_nothing_in_backend_imports_the_cli_entrypoint() -> None:
    """backend.cli.main is the top (it imports serve, never the other way): logging setup
    lives in backend.observability.logs, which both import. Only `python -m backend.cli`
    (backend/cli/__main__.py) imports it."""
    graph = grimp.build_graph("backend", cache_dir=None)
    assert graph.find_modules_that_directly_import("backend.cli.main") == {"backend.cli.__main__"}
