"""The whole /v1 path on a migrated PostgreSQL database, LLM via the fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest

from backend.app import create_app
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI, Fault, Reply

pytestmark = pytest.mark.integration


@pytest.fixture
async def pg_runtime(
    pg_url: str, tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        database_url=pg_url,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


def table_counts(pg_url: str) -> dict[str, int]:
    with psycopg.connect(pg_url) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("users", "api_keys", "conversations", "messages")
        }


async def test_migrations_create_the_schema(pg_runtime: Runtime, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    from alembic.script import ScriptDirectory

    from backend.db.session import alembic_config

    head = ScriptDirectory.from_config(alembic_config(pg_url)).get_current_head()
    assert version == (head,)
    assert table_counts(pg_url) == {"users": 0, "api_keys": 0, "conversations": 0, "messages": 0}


async def test_chat_on_postgres_stores_the_exchange(pg_runtime: Runtime, pg_url: str, llm: FakeOpenAI) -> None:
    key = await make_key(pg_runtime, "dana@example.com", team="platform")
    app = create_app(pg_runtime.settings, pg_runtime)
    app.state.runtime = pg_runtime
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
                "messages": [{"role": "user", "content": "my kubernetes pod is in CrashLoopBackOff"}],
            },
        )
        assert r.status_code == 503
    counts = table_counts(pg_url)
    assert counts["conversations"] == 1 and counts["messages"] == 2  # the failed request left nothing
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT expert, route->>'reason', content FROM messages WHERE role='assistant'").fetchone()
    assert row == ("code", "routed", "Use git rebase -i HEAD~3.")


async def test_concurrent_chats_share_commits_and_the_chain_verifies(
    pg_url: str, tmp_path: Path, gate_dir: Path, llm: FakeOpenAI, encoder: Encoder
) -> None:
    """Twelve requests at once: their exchanges and audit events are group-committed
    (shared transactions, merged INSERTs), the one follow-up on someone else's
    conversation is refused without disturbing them, and the chain holds every answered
    request's event and verifies."""
    import asyncio

    from backend.audit.verify import verify_chain
    from tests.conftest import audit_events, client_as

    settings = Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        database_url=pg_url,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base, general={"capacity": 32}),
        bootstrap_admin=False,
        group_commit=True,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    try:
        ask = {"model": "general", "messages": [{"role": "user", "content": "hello"}]}
        async with client_as(built, await make_key(built, "fay@example.com")) as fay:
            foreign = (await fay.post("/v1/chat/completions", json=ask)).json()["expertgate"]["conversation_id"]
        batches_before = built.pipeline.recorder.writes.batches
        bodies = [{**ask, "messages": [{"role": "user", "content": f"question {i}"}]} for i in range(11)]
        bodies.append({**ask, "conversation_id": foreign})
        async with client_as(built, await make_key(built, "erin@example.com")) as erin:
            answers = await asyncio.gather(*(erin.post("/v1/chat/completions", json=b) for b in bodies))
        assert [a.status_code for a in answers] == [200] * 11 + [404]
        assert built.pipeline.recorder.writes.batches - batches_before < 11  # shared transactions
        assert table_counts(pg_url)["conversations"] == 1 + 11
        events = await audit_events(built, action="chat.completion")
        assert sum(e.status == 200 for e in events) == 1 + 11
        async with built.db.session() as session:
            assert (await verify_chain(session, built.audit.key)).ok
    finally:
        await built.close()
