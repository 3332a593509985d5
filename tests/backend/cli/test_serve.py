"""`expertgate serve --workers N`: what it refuses, what it warns about, and that N
worker processes really answer on one port (a real `expertgate serve` subprocess in
front of the fake OpenAI server)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.cli.main import main
from backend.cli.serve import check_workers
from backend.runtime import Runtime
from backend.settings import Settings
from tests.conftest import gone_holder, write_experts_yaml
from tests.fakes.openai_server import FakeOpenAI


def test_workers_are_refused_with_the_embedded_llm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shipped experts.yaml points every expert at `api_base: local`.
    monkeypatch.setenv("EXPERTGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EXPERTGATE_EXPERTS_FILE", raising=False)
    assert main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "EXPERTGATE_WORKERS=2" in err and "api_base 'local'" in err and "general" in err


def test_workers_without_redis_warn_that_limits_are_per_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        data_dir=tmp_path, workers=3, experts_file=write_experts_yaml(tmp_path / "e.yaml", "http://127.0.0.1:9/v1")
    )
    with caplog.at_level(logging.WARNING, logger="backend.cli.serve"):
        check_workers(settings)
    assert "3 workers without EXPERTGATE_REDIS_URL" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="backend.cli.serve"):
        check_workers(settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/15"}))
    assert caplog.text == ""


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def test_two_workers_serve_one_port(tmp_path: Path, llm: FakeOpenAI) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "data"
    env = {
        **os.environ,
        "EXPERTGATE_DATA_DIR": str(data),
        "EXPERTGATE_EXPERTS_FILE": str(write_experts_yaml(tmp_path / "experts.yaml", llm.api_base)),
        "EXPERTGATE_LOG_LEVEL": "warning",
    }
    env.pop("EXPERTGATE_DATABASE_URL", None)
    env.pop("EXPERTGATE_REDIS_URL", None)
    cli = [sys.executable, "-m", "backend.cli", "serve", "--workers", "2", "--port", str(port)]
    proc = subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        ready = 0
        while ready < 1 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                ready += httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.5)
        # The parent made the one bootstrap admin before the workers started.
        key = (data / "admin.key").read_text().strip()
        assert len(_children(proc.pid)) >= 2
        answers = [
            httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={"model": "general", "messages": [{"role": "user", "content": f"hello {i}"}]},
                timeout=60,
            )
            for i in range(4)
        ]
        assert [r.status_code for r in answers] == [200] * 4, answers[-1].text
        assert all(r.json()["expertgate"]["reason"] == "requested" for r in answers)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


async def test_a_served_app_freezes_what_it_loaded_out_of_the_collector(settings: Settings) -> None:
    """Startup objects (models, indexes, libraries) leave the GC's generations: a full
    collection over them stopped the event loop for ~400 ms under load (docs/load.md)."""
    import gc
    import weakref

    from backend.app import create_app

    class Holder:
        def __init__(self, other: object) -> None:
            self.me, self.other = self, other

    app = create_app(settings)  # no runtime given: the lifespan builds and owns one
    gc.unfreeze()
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 100_000
            # Garbage made after startup is still collected.
            cycle: list[object] = []
            cycle.append(cycle)
            ref = weakref.ref(Holder(cycle))
            del cycle
            gc.collect()
            assert ref() is None
    finally:
        gc.unfreeze()


async def test_a_served_app_resumes_the_ingest_job_a_stopped_process_left(settings: Settings, runtime: Runtime) -> None:
    """Jobs run inline are background tasks of the API process: one it had queued when it
    stopped is run by the next process to start (backend/knowledge/jobs.py)."""
    from sqlalchemy import update

    from backend.app import create_app
    from backend.db.models import IngestJob

    holder = gone_holder()
    async with runtime.db.transaction() as session:
        job_id = await runtime.knowledge.jobs.submit_uploads(
            session,
            "legal",
            [("terms.md", b"# Terms\n\nNotice periods are 30 days.\n")],
            groups=frozenset(),
            user_id=None,
        )
        await session.execute(update(IngestJob).where(IngestJob.id == job_id).values(holder=holder))

    app = create_app(settings)  # no runtime given: the lifespan builds and owns one
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with runtime.db.session() as session:
                status = (await session.get(IngestJob, job_id, populate_existing=True)).status  # type: ignore[union-attr]
            if status not in ("queued", "running"):
                break
            await asyncio.sleep(0.2)
    assert status == "succeeded"
