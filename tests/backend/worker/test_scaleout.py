"""Scale-out on one machine: two `expertgate serve` processes and one Celery worker.

Real PostgreSQL (one fresh database), real Redis (db 13: broker, results and quota
counters) and one shared data directory, as replicas behind a load balancer would have;
the experts' LLM is the fake OpenAI server on loopback. One module-scoped deployment
serves every test, so the processes start once. What is checked:

- an upload through replica A runs on the worker; killed (SIGKILL) mid-ingest and
  restarted, the worker finishes the job without duplicate chunks, and both replicas
  cite the new chunks;
- a router version promoted through A's admin API is served by A and B;
- a per-user rpm limit admits exactly N of N+k concurrent requests split over A and B.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from backend.audit.writer import build_audit_trail
from backend.bootstrap import bootstrap_admin
from backend.db.session import Database, migrate
from backend.guard.policy import PiiGuard
from backend.settings import Settings
from router.artifacts import BUNDLED
from tests.e2e.conftest import free_port
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serve_openai import write_experts
from tests.services import dedicated_redis
from tests.support.processes import EXPERTGATE, stop_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
BROKER = os.environ.get("EXPERTGATE_TEST_SCALEOUT_REDIS", "redis://127.0.0.1:6379/13")
DOC_NAME = "harbor-handbook.md"
MARKER = "quillfeather escrow covenant"


@dataclass
class Deployment:
    pg_url: str
    data_dir: Path
    logs: Path
    env: dict[str, str]
    admin_key: str
    api: dict[str, str] = field(default_factory=dict)  # name -> base URL
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], **extra: str) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                argv, cwd=ROOT, env={**self.env, **extra}, stdout=out, stderr=subprocess.STDOUT
            )

    def start_api(self, name: str) -> None:
        port = free_port()
        self.api[name] = f"http://127.0.0.1:{port}"
        self.start(name, [sys.executable, "-m", "backend.cli", "serve"], EXPERTGATE_PORT=str(port))

    def start_worker(self) -> None:
        self.start("worker", [str(EXPERTGATE), "worker", "--pool", "solo", "--hostname", f"w{time.time_ns()}@%h"])

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        stop_process(self.procs.pop(name), sig)

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(self.logs.glob("*.log"))
        )

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_url) as conn:
            return list(conn.execute(query, params).fetchall())


def wait_for(what: str, check: Callable[[], bool], deployment: Deployment, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in deployment.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} while waiting for {what}\n{deployment.tail()}")
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{deployment.tail()}")


def ready(base: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    dedicated_redis(BROKER)
    pg_url = _create_database()
    base = tmp_path_factory.mktemp("scaleout")
    data_dir, logs = base / "shared", base / "logs"
    data_dir.mkdir()
    logs.mkdir()
    llm = FakeOpenAI().start()
    write_experts(base / "experts.yaml", llm.api_base)
    env = {
        **os.environ,
        "EXPERTGATE_DATA_DIR": str(data_dir),
        "EXPERTGATE_DATABASE_URL": pg_url,
        "EXPERTGATE_REDIS_URL": BROKER,
        "EXPERTGATE_EXPERTS_FILE": str(base / "experts.yaml"),
        "EXPERTGATE_BOOTSTRAP_ADMIN": "false",
        "EXPERTGATE_ROUTER_RELOAD_S": "0.5",
        "EXPERTGATE_KNOWLEDGE_RELOAD_S": "0.5",
        # A killed worker's task comes back after 3 s (production: hours, see docs/deploy.md).
        "EXPERTGATE_CELERY_VISIBILITY_TIMEOUT_S": "3",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    for inherited in ("EXPERTGATE_AUDIT_RETENTION_DAYS", "EXPERTGATE_JOB_RUNNER", "EXPERTGATE_ROUTER_DIR"):
        env.pop(inherited, None)
    # Migrate once here: replicas starting together would race on the same revision.
    settings = Settings(data_dir=data_dir, database_url=pg_url)
    migrate(settings.resolved_database_url)
    asyncio.run(_bootstrap(settings))
    deploy = Deployment(pg_url, data_dir, logs, env, (data_dir / "admin.key").read_text().strip())
    try:
        deploy.start_api("a")
        deploy.start_api("b")
        deploy.start_worker()
        for name in ("a", "b"):
            wait_for(f"replica {name} to be ready", ready(deploy.api[name]), deploy, timeout_s=150)
        yield deploy
    finally:
        for name in list(deploy.procs):
            deploy.stop(name)
        llm.stop()
        _drop_database(pg_url)


async def _bootstrap(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    try:
        await bootstrap_admin(db, settings, build_audit_trail(settings, PiiGuard()))
    finally:
        await db.dispose()


def _create_database() -> str:
    from tests.services import PG_ADMIN, _unavailable

    name = f"eg_scaleout_{os.getpid()}_{time.time_ns() % 10**8}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL at " + PG_ADMIN, exc)
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


def _drop_database(url: str) -> None:
    from tests.services import PG_ADMIN

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def handbook() -> bytes:
    """A long handbook of our own (about 120 chunks), so ingestion takes a few seconds."""
    topics = ["vendor onboarding", "expense approval", "data retention", "contract renewal", "incident review"]
    sections = []
    for i in range(120):
        topic = topics[i % len(topics)]
        body = " ".join(
            f"Rule {i}.{j}: for {topic} case {i * 7 + j}, the owning team records the decision, "
            f"the reviewer signs within {j + 2} business days, and exceptions go to the board."
            for j in range(4)
        )
        sections.append(f"## Section {i}: {topic}\n\n{body}\n")
    sections.insert(
        57,
        f"## Section escrow\n\nThe {MARKER} requires two signatures from Harborlight legal before any "
        "escrow funds are released to a supplier.\n",
    )
    return ("# Harborlight operations handbook\n\n" + "\n".join(sections)).encode()


def job_status(deploy: Deployment, replica: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{deploy.api[replica]}/api/v1/ingest-jobs/{job_id}", headers=deploy.headers(), timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cited_sources(deploy: Deployment, replica: str) -> set[str]:
    response = httpx.post(
        f"{deploy.api[replica]}/v1/chat/completions",
        headers=deploy.headers(),
        json={"model": "legal", "messages": [{"role": "user", "content": f"What does the {MARKER} require?"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {c["source"] for c in response.json()["expertgate"]["citations"]}


def test_upload_runs_on_the_worker_survives_its_death_and_reaches_both_replicas(deployment: Deployment) -> None:
    deploy = deployment
    response = httpx.post(
        f"{deploy.api['a']}/api/v1/documents",
        headers=deploy.headers(),
        data={"domain": "legal"},
        files={"files": (DOC_NAME, handbook(), "text/markdown")},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    # Progress is in SQL, so any replica reports it; the worker (not A) runs the job.
    wait_for("the worker to start the job", lambda: job_status(deploy, "b", job_id)["status"] == "running", deploy)
    deploy.stop("worker", signal.SIGKILL)
    [(status,)] = deploy.sql("SELECT status FROM ingest_jobs WHERE id = %s", job_id)
    assert status == "running", "the job finished before the worker was killed: nothing was interrupted"
    assert deploy.sql("SELECT count(*) FROM documents WHERE domain = 'legal'") == [(0,)]

    deploy.start_worker()
    wait_for(
        "the restarted worker to finish the job",
        # finished_at: results recorded and the new index version published.
        lambda: job_status(deploy, "a", job_id)["finished_at"] is not None,
        deploy,
        timeout_s=180,
    )
    job = job_status(deploy, "b", job_id)
    assert job["status"] == "succeeded", job
    assert job["index_version"]

    [(doc_id, chunk_count)] = deploy.sql(
        "SELECT id, chunk_count FROM documents WHERE domain = 'legal' AND source = %s", f"upload/{DOC_NAME}"
    )
    [(chunks, distinct)] = deploy.sql(
        "SELECT count(*), count(DISTINCT ordinal) FROM chunks WHERE document_id = %s", doc_id
    )
    assert chunks == distinct == chunk_count > 100
    # The index version the job published is what the SQL pointer names.
    assert deploy.sql("SELECT version FROM artifact_pointers WHERE kind = 'index' AND name = 'legal'") == [
        (job["index_version"],)
    ]
    for replica in ("a", "b"):
        wait_for(
            f"replica {replica} to cite the new document",
            lambda r=replica: f"upload/{DOC_NAME}" in cited_sources(deploy, r),  # type: ignore[misc]
            deploy,
            timeout_s=20,
        )


def test_a_promoted_router_version_reaches_both_replicas(deployment: Deployment) -> None:
    deploy = deployment
    source = next(p for p in BUNDLED.iterdir() if (p / "manifest.json").is_file())
    target = deploy.data_dir / "router" / "versions" / "gate-scaleout"
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = "gate-scaleout"
    (target / "manifest.json").write_text(json.dumps(manifest))

    response = httpx.post(
        f"{deploy.api['a']}/api/v1/admin/router/promote",
        headers=deploy.headers(),
        json={"version": "gate-scaleout"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    [(version, checksum)] = deploy.sql(
        "SELECT version, checksum FROM artifact_pointers WHERE kind = 'router' AND name = 'active'"
    )
    assert version == "gate-scaleout" and len(checksum) == 64
    assert not (deploy.data_dir / "router" / "ACTIVE").exists()

    def serves(replica: str) -> bool:
        return bool(httpx.get(f"{deploy.api[replica]}/readyz", timeout=5).json()["checks"]["router"] == "gate-scaleout")

    for replica in ("a", "b"):
        wait_for(f"replica {replica} to serve the promoted gate", lambda r=replica: serves(r), deploy, timeout_s=15)  # type: ignore[misc]


def test_a_per_user_rpm_limit_is_shared_exactly_by_both_replicas(deployment: Deployment) -> None:
    deploy = deployment
    limit, extra = 4, 3
    created = httpx.post(
        f"{deploy.api['a']}/api/v1/admin/keys",
        headers=deploy.headers(),
        json={"email": "burst@example.com"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    key = created.json()["secret"]
    policy = httpx.put(
        f"{deploy.api['b']}/api/v1/admin/quotas",
        headers=deploy.headers(),
        json={"scope": "user", "name": "burst@example.com", "rpm": limit},
        timeout=10,
    )
    assert policy.status_code == 200, policy.text

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [
                client.post(
                    f"{deploy.api['ab'[i % 2]]}/v1/chat/completions",
                    headers=deploy.headers(key),
                    json={"model": "general", "messages": [{"role": "user", "content": f"hello number {i}"}]},
                )
                for i in range(limit + extra)
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    statuses = asyncio.run(burst())
    assert sorted(statuses) == [200] * limit + [429] * extra, statuses
