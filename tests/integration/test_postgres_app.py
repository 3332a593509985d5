"""The whole /v1 path on a migrated PostgreSQL database, LLM via the fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest

from backend.app import create_app
from backend.container import Container, build_container
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Fault, Reply

pytestmark = pytest.mark.integration


@pytest.fixture
async def pg_container(
    pg_url: str, tmp_path: Path, llm: FakeOpenAI, encoder: Encoder
) -> AsyncIterator[Container]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
    )
    built = build_container(settings, encoder=encoder, environ={})
    yield built
    await built.close()


def table_counts(pg_url: str) -> dict[str, int]:
    with psycopg.connect(pg_url) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("users", "api_keys", "conversations", "messages")
        }


async def test_migrations_create_the_schema(pg_container: Container, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    from alembic.script import ScriptDirectory

    from backend.db.session import alembic_config

    head = ScriptDirectory.from_config(alembic_config(pg_url)).get_current_head()
    assert version == (head,)
    assert table_counts(pg_url) == {"users": 0, "api_keys": 0, "conversations": 0, "messages": 0}


async def test_chat_on_postgres_stores_the_exchange(
    pg_container: Container, pg_url: str, llm: FakeOpenAI
) -> None:
    key = await make_key(pg_container, "dana@example.com", team="platform")
    app = create_app(pg_container.settings, pg_container)
    app.state.container = pg_container
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"authorization": f"Bearer {key}"},
    ) as http:
        llm.script(Reply("Use git rebase -i HEAD~3."))
        r = await http.post(
            "/v1/chat/completions",
            json={
                "model": "auto",
                "messages": [
                    {
                        "role": "user",
                        "content": "how do I squash my last three git commits into one?",
                    }
                ],
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["expertgate"]["expert"] == "code"
        llm.script(Fault(500), Fault(500))
        r = await http.post(
            "/v1/chat/completions",
            json={
                "model": "auto",
                "messages": [
                    {"role": "user", "content": "my kubernetes pod is in CrashLoopBackOff"}
                ],
            },
        )
        assert r.status_code == 503
    counts = table_counts(pg_url)
    assert (
        counts["conversations"] == 1 and counts["messages"] == 2
    )  # the failed request left nothing
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT expert, route->>'reason', content FROM messages WHERE role='assistant'"
        ).fetchone()
    assert row == ("code", "routed", "Use git rebase -i HEAD~3.")
