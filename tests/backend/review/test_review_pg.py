"""The review queue on PostgreSQL: held and unheld answers committed together by the
group commit (its pipelined path), each held one with its review row, decided once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.conftest import client_as, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.integration


@pytest.fixture
async def pg_runtime(pg_url: str, tmp_path: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        experts_file=write_experts_yaml(
            tmp_path / "experts.yaml", llm.api_base, general={"review": {"when": "always"}}
        ),
        bootstrap_admin=False,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


async def test_held_and_delivered_answers_share_a_group_commit(pg_runtime: Runtime, pg_url: str) -> None:
    asker = await make_key(pg_runtime, "ana@example.com")
    reviewer = await make_key(pg_runtime, "rita@example.com", roles={"reviewer"})
    draft = "This is the fake model's answer."

    def ask(model: str) -> dict[str, object]:
        return {"model": model, "messages": [{"role": "user", "content": "how do I squash git commits?"}]}

    async with client_as(pg_runtime, asker) as u, client_as(pg_runtime, reviewer) as r:
        replies = await asyncio.gather(*(u.post("/v1/chat/completions", json=ask(m)) for m in ["general", "code"] * 4))
        assert all(x.status_code == 200 for x in replies), [x.text for x in replies]
        held = [x.json() for x in replies[::2]]
        assert all(draft not in x.text for x in replies[::2])
        assert all(x.json()["choices"][0]["message"]["content"] == draft for x in replies[1::2])
        queue = (await r.get("/api/v1/reviews")).json()["data"]
        assert sorted(i["id"] for i in queue) == sorted(h["expertgate"]["review"]["id"] for h in held)
        first = queue[0]["id"]
        decisions = await asyncio.gather(
            *(r.post(f"/api/v1/reviews/{first}", json={"decision": "approve", "reason": "fine"}) for _ in range(2))
        )
        assert sorted(d.status_code for d in decisions) == [200, 409]
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT m.content, v.status FROM reviews v JOIN messages m ON m.id = v.message_id ORDER BY v.status"
        ).fetchall()
    assert len(rows) == 4
    assert rows[0] == (draft, "approved")
    assert all(content.startswith("This answer is being reviewed") for content, status in rows if status == "pending")
