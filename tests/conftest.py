"""Shared fixtures: the bundled encoder (loaded once), the fake OpenAI server, an app.

Tests are laid out like the code (tests/backend/<package>/, tests/router/, ...).
Service-backed fixtures (PostgreSQL, Redis) are in tests/services.py, a plugin loaded here.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.app import create_app
from backend.audit.types import Actor
from backend.audit.writer import AuditTrail
from backend.db.models import AuditEvent, User
from backend.db.session import Database, migrate
from backend.errors import AppError
from backend.identity.service import IdentityService
from backend.identity.users import UserAdmin, UserChange
from backend.runtime import Runtime, build_runtime
from backend.settings import Settings, to_async_url
from router.artifacts import ArtifactStore
from router.dataset import load_jsonl
from router.encoder import Encoder, SentenceTransformerEncoder, bundled_minilm_path
from router.train import TrainConfig, train_gate
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
# The gate every app-level test routes with (not the one the product ships, which changes
# whenever it is retrained): a kNN gate trained once per session from a fixed file.
TEST_GATE = "gate-test-v1"
TEST_GATE_EXAMPLES = ROOT / "tests" / "fakes" / "gate_examples.jsonl"

pytest_plugins = ["tests.services"]


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    return SentenceTransformerEncoder(bundled_minilm_path(), name="all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def llm(fake_llm: FakeOpenAI) -> FakeOpenAI:
    fake_llm.reset()
    return fake_llm


@pytest.fixture
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database for tests below the app: SQLite in ``tmp_path``, or, in a
    module marked ``postgres``, a fresh PostgreSQL database (tests/services.py)."""
    if request.node.get_closest_marker("postgres"):
        url = to_async_url(request.getfixturevalue("pg_url"))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'eg.db'}"
    migrate(url)
    database = Database(url)
    yield database
    await database.dispose()


def write_experts_yaml(path: Path, api_base: str, **overrides: Any) -> Path:
    """The shipped experts.yaml with every expert pointed at ``api_base``."""
    raw = yaml.safe_load((ROOT / "experts" / "experts.yaml").read_text())
    raw["defaults"]["llm"] = {"model": "openai/fake-model", "api_base": api_base}
    raw["defaults"]["timeout_s"] = 5
    # Tests script exact fault sequences; a test that wants retries sets them itself.
    raw["defaults"]["retries"] = 0
    raw["defaults"]["first_token_timeout_s"] = 5
    for name, changes in overrides.items():
        raw["experts"][name].update(changes)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def test_gate_store(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A router store (router/artifacts.py layout) whose one version, :data:`TEST_GATE`,
    is active: a kNN gate (no fine-tuning: a few seconds) trained by the router's own
    training code on tests/fakes/gate_examples.jsonl. Read-only: tests get copies."""
    examples = load_jsonl(TEST_GATE_EXAMPLES)
    trained = train_gate(
        examples, encoder, ("code", "legal", "support", "general"), TrainConfig(architecture="knn"), version=TEST_GATE
    )
    root = tmp_path_factory.mktemp("test-gate") / "router"
    ArtifactStore(root).save(trained.scorer)
    # The ACTIVE pointer by hand, not promote(): promote would record the version it
    # replaces (the bundled default) in HISTORY, and a rollback could land on the shipped
    # gate. With ACTIVE alone the store is a fresh deployment whose default is the test gate.
    (root / "ACTIVE").write_text(TEST_GATE + "\n")
    return root


def copy_test_gate(store: Path, into: Path) -> Path:
    """A copy of ``store`` (the ``test_gate_store`` fixture) at ``into``/gate-store, to pass
    as ``Settings.router_dir``: promotions, rollbacks and training in it touch no other test."""
    return Path(shutil.copytree(store, into / "gate-store"))


@pytest.fixture
def gate_dir(test_gate_store: Path, tmp_path: Path) -> Path:
    """This test's own copy of the test gate's store (:func:`copy_test_gate`)."""
    return copy_test_gate(test_gate_store, tmp_path)


@pytest.fixture
def settings(tmp_path: Path, llm: FakeOpenAI, gate_dir: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        router_dir=gate_dir,
        experts_file=write_experts_yaml(tmp_path / "experts.yaml", llm.api_base),
        bootstrap_admin=False,
    )


@pytest.fixture
async def runtime(settings: Settings, encoder: Encoder) -> AsyncIterator[Runtime]:
    built = build_runtime(settings, encoder=encoder, environ={})
    yield built
    await built.close()


def auth(key: str) -> dict[str, str]:
    """The headers that present ``key`` as a bearer API key."""
    return {"authorization": f"Bearer {key}"}


async def audit_events(runtime: Runtime, **where: Any) -> list[AuditEvent]:
    """The chained audit events whose columns equal ``where`` (``action="quota.set"``),
    in chain order. The app writes events to the outbox and the lifespan's chainer (not
    running under ASGITransport) would chain them within milliseconds: chain them now."""
    await runtime.chainer.drain()
    async with runtime.db.session() as s:
        stmt = select(AuditEvent).order_by(AuditEvent.seq)
        for column, value in where.items():
            stmt = stmt.where(getattr(AuditEvent, column) == value)
        return list((await s.scalars(stmt)).all())


async def demote_each_other(db: Database, trail: AuditTrail) -> tuple[AppError | None, dict[str, list[str]]]:
    """Two admins, Ana and Bob, each demote the other in their own transaction (as two API
    processes would), Bob's running while Ana's is still open. Returns how Bob's change
    was refused (None: it went through) and every user's roles afterwards.

    Ana commits only once Bob's change can go no further without her commit, or is done;
    no timing decides the order. With the admins lock, Bob waits for it before reading
    anything, then reads Ana's change and is refused. Without it, he reads before she
    commits and both demotions go through: what the callers' assertions catch.
    """
    async with db.transaction() as session:
        identity = IdentityService(session)
        ana = (await identity.ensure_user("ana@example.com", roles={"admin"})).id
        bob = (await identity.ensure_user("bob@example.com", roles={"admin"})).id
    demote = UserChange(roles=frozenset({"user"}))
    ana_changed = asyncio.Event()
    bob_stuck = asyncio.Event()  # Bob waits for Ana's commit, or his change is done

    async def watch_bob(session: AsyncSession) -> Callable[[], Awaitable[None]]:
        """Sets ``bob_stuck`` once Bob's transaction (``session``) waits for Ana's; returns
        what stops watching."""
        if db.engine.dialect.name == "postgresql":
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
            waits = text("SELECT cardinality(pg_blocking_pids(:pid)) > 0")

            async def poll() -> None:
                async with db.read() as probe:
                    while not await probe.scalar(waits, {"pid": pid}):  # noqa: ASYNC110
                        await asyncio.sleep(0.005)  # PostgreSQL announces no lock wait: ask again
                bob_stuck.set()

            poller = asyncio.create_task(poll())

            async def stop_polling() -> None:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)

            return stop_polling
        # SQLite has one writer at a time and Ana's change holds the write lock: Bob's
        # first write waits for her commit.
        bobs = (await session.connection()).sync_connection

        def on_statement(conn: object, _cursor: object, statement: str, *_: object) -> None:
            if conn is bobs and statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
                bob_stuck.set()

        event.listen(db.engine.sync_engine, "before_cursor_execute", on_statement)

        async def stop_listening() -> None:
            event.remove(db.engine.sync_engine, "before_cursor_execute", on_statement)

        return stop_listening

    async def ana_demotes_bob() -> None:
        async with db.transaction() as session:
            await UserAdmin(session, trail).update_user(Actor("api", user_id=ana), bob, demote)
            ana_changed.set()
            async with asyncio.timeout(60):  # a failure bound only: Bob never got stuck nor done
                await bob_stuck.wait()

    async def bob_demotes_ana() -> AppError | None:
        await ana_changed.wait()
        try:
            async with db.transaction() as session:
                stop_watching = await watch_bob(session)
                try:
                    await UserAdmin(session, trail).update_user(Actor("api", user_id=bob), ana, demote)
                finally:
                    bob_stuck.set()  # done, or refused: Ana may commit
                    await stop_watching()
        except AppError as exc:
            return exc
        return None

    _, refused = await asyncio.gather(ana_demotes_bob(), bob_demotes_ana())
    async with db.session() as session:
        roles = dict((await session.execute(select(User.email, User.roles))).tuples().all())
    return refused, roles


def gone_holder() -> str:
    """An ingest job holder (``host:pid``) whose process has ended: its pid is free."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}"


async def make_key(runtime: Runtime, email: str, **kwargs: Any) -> str:
    async with runtime.db.transaction() as session:
        identity = IdentityService(session)
        user = await identity.ensure_user(email, **kwargs)
        return (await identity.create_key(user)).secret


def client_as(runtime: Runtime, key: str) -> httpx.AsyncClient:
    """A client of the app that presents ``key`` on every request (use with ``async with``)."""
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=auth(key))


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app that sends no credentials (pass :func:`auth` per request)."""
    app = create_app(runtime.settings, runtime)
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings, runtime)
    key = await make_key(runtime, "alice@example.com")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"authorization": f"Bearer {key}"},
    ) as http:
        app.state.runtime = runtime
        yield http
