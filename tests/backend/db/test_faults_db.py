"""Fault injection on the database (issue 25): another process holds SQLite's write lock
longer than a request may wait. The request gets a clear 503 with Retry-After (not a 500),
nothing half-written stays, and the next request after the lock goes is served."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.runtime import Runtime, build_runtime
from backend.settings import Settings
from router.encoder import Encoder
from tests.backend.api.test_chat_api import count_rows
from tests.conftest import client_as, make_key, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.faults

ASK = {"model": "support", "messages": [{"role": "user", "content": "how do I reset my Beacon password?"}]}


@pytest.fixture
async def impatient(tmp_path: Path, llm: FakeOpenAI, encoder: Encoder) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
        database_busy_timeout_s=0.5,
    )
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


def database_file(runtime: Runtime) -> str:
    return runtime.db.url.split("///", 1)[1]


async def test_a_locked_database_is_a_503_and_keeps_nothing_half_written(impatient: Runtime) -> None:
    key = await make_key(impatient, "ana@example.com")
    async with client_as(impatient, key) as c:
        assert (await c.post("/v1/chat/completions", json=ASK)).status_code == 200
        other = sqlite3.connect(database_file(impatient), timeout=5, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # another writer holds the lock
        try:
            started = time.perf_counter()
            r = await c.post("/v1/chat/completions", json=ASK)
            took = time.perf_counter() - started
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "database_unavailable"
        assert "nothing was saved" in error["message"] and "SELECT" not in error["message"]
        assert int(r.headers["retry-after"]) >= 1
        # Giving up in time is the point, so this is wall-clock: the 0.5 s busy timeout
        # plus room for a loaded machine, far short of the 30 s SQLite would wait by default.
        assert took < 10
        assert await count_rows(impatient) == (1, 2)  # only the first exchange
        assert (await c.post("/v1/chat/completions", json=ASK)).status_code == 200
    assert await count_rows(impatient) == (2, 4)


async def test_a_locked_database_does_not_stop_reads_that_need_no_write(impatient: Runtime) -> None:
    key = await make_key(impatient, "ana@example.com")
    other = sqlite3.connect(database_file(impatient), timeout=5, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a writer holds the lock; readers may still read (WAL)
    try:
        async with client_as(impatient, key) as c:
            r = await c.get("/v1/models")
        assert r.status_code == 200
    finally:
        other.execute("ROLLBACK")
        other.close()
