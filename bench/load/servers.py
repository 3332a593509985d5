"""The processes of the load benchmark: the C stub and load generator, expertgate, LiteLLM.

Each server starts in its own session (process group) so that it and every worker it
forks can be measured and stopped together. CPU time and RSS are read from /proc for
the server and all its descendants: LiteLLM's workers are children of its master,
expertgate's embedded helpers are children of ``expertgate serve``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV_BIN = Path(sys.executable).parent
LITELLM_BIN = ROOT / "bench" / ".venv-litellm" / "bin" / "litellm"
PG_URL = os.environ.get("EXPERTGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_USER = "bench@example.com"
# LiteLLM 1.106 refuses to start with a weak master key; this one is per run.
LITELLM_MASTER_KEY = "sk-" + secrets.token_hex(32)
STUB_MODEL = "stub-model"
# The stub stands for a vLLM server, so both gateways reach it through litellm's provider
# for vLLM (plain HTTP; litellm's "openai" provider goes through the OpenAI SDK, ~1 CPU-ms
# more per call: bench/results/llm_call.json).
STUB_PROVIDER = "hosted_vllm"
# expertgate's Redis (a database of its own, flushed at start) and its worker processes.
EG_REDIS_URL = os.environ.get("EXPERTGATE_BENCH_REDIS", "redis://127.0.0.1:6379/8")
EG_WORKERS = int(os.environ.get("EXPERTGATE_BENCH_WORKERS", os.cpu_count() or 1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_tools(out_dir: Path) -> tuple[Path, Path]:
    """Compiles stub.c and loadgen.c (gcc -O2); returns (stub, loadgen)."""
    built = []
    for name in ("stub", "loadgen"):
        exe = out_dir / name
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(HERE / f"{name}.c")], check=True)
        built.append(exe)
    return built[0], built[1]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: state, ppid, ... (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes (fields 14 and 15 of stat)."""
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):  # a process may have exited since it was listed
            fields = _stat(p)
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat less idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / CLK_TCK


SERVICES = ("postgres", "redis-server")  # the shared services both gateways' runs lean on


def services_cpu_seconds(names: tuple[str, ...] = SERVICES) -> float:
    """CPU seconds of the services' processes, those that have exited included.

    Each service's root (a process named in ``names`` whose parent is not) counts its own
    time, the time of the children it has reaped (PostgreSQL's postmaster reaps every
    backend that ends, so a connection closed mid-run still counts) and the time of its
    live descendants. Summing only the live processes would lose an ended backend's time
    and could even come out negative between two readings."""
    comm: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                comm[int(entry)] = Path(f"/proc/{entry}/comm").read_text().strip()
    total = 0
    for pid, name in comm.items():
        if name not in names:
            continue
        with contextlib.suppress(OSError, IndexError):
            fields = _stat(pid)
            total += int(fields[11]) + int(fields[12])  # its own utime + stime
            if comm.get(int(fields[1])) not in names:  # a root: add its reaped children's
                total += int(fields[13]) + int(fields[14])
    return total / CLK_TCK


def rss_mib(pids: list[int]) -> float:
    total_kib = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def rss(self) -> float:
        return rss_mib(self.pids())

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def spawn(name: str, argv: list[str], port: int, workdir: Path, env: dict[str, str] | None = None) -> Server:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return Server(name, proc, port, log)


def wait_ready(server: Server, path: str, timeout_s: float, headers: dict[str, str] | None = None) -> float:
    """Polls GET ``path`` until it answers 2xx; returns the seconds it took."""
    started = time.monotonic()
    url = f"http://127.0.0.1:{server.port}{path}"
    while time.monotonic() - started < timeout_s:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited ({server.proc.returncode}); see {server.log}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
                if 200 <= r.status < 300:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{server.name} not ready after {timeout_s:.0f} s; see {server.log}")


def post_json(port: int, path: str, body: object, headers: dict[str, str] | None = None) -> object:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def start_stub(exe: Path, workdir: Path, tokens: int) -> Server:
    port = free_port()
    server = spawn("stub", [str(exe), "-p", str(port), "-t", str(tokens)], port, workdir)
    wait_ready(server, "/v1/models", 10)
    return server


def configure_stub(stub: Server, delay_ms: float, cap: int) -> None:
    url = f"http://127.0.0.1:{stub.port}/_stub/config?delay_ms={delay_ms}&cap={cap}"
    urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=5).read()


# -- expertgate ------------------------------------------------------------------


def expertgate_database_url(workdir: Path) -> str:
    """The run's own PostgreSQL database (named after its work directory)."""
    name = "eg_bench_" + hashlib.sha1(str(workdir).encode()).hexdigest()[:12]
    return f"{PG_URL.rsplit('/', 1)[0]}/{name}"


@contextlib.contextmanager
def expertgate_backing(workdir: Path) -> Iterator[None]:
    """A fresh PostgreSQL database and an empty Redis database for one run.

    expertgate runs as a production deployment would on this machine: PostgreSQL for
    SQL, Redis for quotas and capacity shared by its worker processes. The database
    is dropped afterwards; the Redis database (EXPERTGATE_BENCH_REDIS) is flushed first.
    """
    import psycopg
    import redis

    name = expertgate_database_url(workdir).rsplit("/", 1)[1]
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        redis.Redis.from_url(EG_REDIS_URL, socket_connect_timeout=3).flushdb()
    except (psycopg.OperationalError, redis.RedisError) as exc:
        raise RuntimeError(
            f"the benchmark runs expertgate on PostgreSQL ({PG_URL}) and Redis ({EG_REDIS_URL}): {exc}"
        ) from exc
    try:
        yield
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def expertgate_env(workdir: Path) -> dict[str, str]:
    return {
        "EXPERTGATE_DATA_DIR": str(workdir / "expertgate-data"),
        "EXPERTGATE_DATABASE_URL": expertgate_database_url(workdir),
        "EXPERTGATE_REDIS_URL": EG_REDIS_URL,
        "EXPERTGATE_GROUP_COMMIT": "true",  # as infra/ deploys it on PostgreSQL
        "EXPERTGATE_JOB_RUNNER": "inline",  # the sample ingest runs in the CLI, no Celery worker
        "EXPERTGATE_WORKERS": str(EG_WORKERS),
        "EXPERTGATE_EXPERTS_FILE": str(workdir / "experts.yaml"),
        "EXPERTGATE_LOG_LEVEL": "warning",
        # Every request of the load is the same question: with the text memo (router/memo.py)
        # on, the encoder would run once and the figures would be those of repeated traffic.
        # Off, each request pays its encoder passes as a new question does.
        "EXPERTGATE_TEXT_MEMO_ENTRIES": os.environ.get("EXPERTGATE_BENCH_TEXT_MEMO", "0"),
        "STUB_API_KEY": "sk-stub",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def write_experts_file(workdir: Path, stub_port: int) -> None:
    """The shipped experts.yaml with every expert's LLM pointed at the stub.

    Capacity goes up to 256 per expert: the stub has no real slot limit, and the
    benchmark measures the gateway, not a configured queue in front of a fast backend.
    """
    spec = yaml.safe_load((ROOT / "experts" / "experts.yaml").read_text())
    spec["defaults"]["llm"] = {
        "model": f"{STUB_PROVIDER}/{STUB_MODEL}",
        "api_base": f"http://127.0.0.1:{stub_port}/v1",
        "api_key_env": "STUB_API_KEY",
    }
    spec["defaults"]["capacity"] = 256
    for expert in spec["experts"].values():
        expert.pop("llm", None)
        expert["capacity"] = 256
    (workdir / "experts.yaml").write_text(yaml.safe_dump(spec))


def _cli(workdir: Path, *args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "expertgate"), *args],
        cwd=workdir,
        env={**os.environ, **expertgate_env(workdir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"expertgate {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def prepare_expertgate(workdir: Path, stub_port: int) -> str:
    """Experts file, sample knowledge, a user key and generous quotas; returns the key.

    The quota policies are real (every request is admitted and charged) but high
    enough never to refuse: the benchmark measures their cost, not their limits.
    """
    write_experts_file(workdir, stub_port)
    _cli(workdir, "ingest", "--samples")
    key = _cli(workdir, "keys", "create", "--user", BENCH_USER, "--team", "bench").strip().splitlines()[-1]
    _cli(workdir, "quota", "set", "--global", "--rpm", "100000000")
    _cli(workdir, "quota", "set", "--team", "bench", "--rpm", "100000000", "--tokens-per-day", "1000000000000")
    _cli(workdir, "quota", "set", "--user", BENCH_USER, "--rpm", "100000000", "--tokens-per-day", "1000000000000")
    return key


def start_expertgate(
    workdir: Path, name: str = "expertgate", env: dict[str, str] | None = None, source: Path | None = None
) -> Server:
    """Spawns ``expertgate serve`` (EG_WORKERS workers) as the server ``name``; ready when
    GET /readyz answers. ``env`` is added to its environment. ``source``: run the backend
    of another checkout (an earlier commit, for a before/after in one run) on this venv."""
    port = free_port()
    extra = {"PYTHONPATH": str(source)} if source is not None else {}
    return spawn(
        name,
        [str(VENV_BIN / "python"), "-m", "backend.cli", "serve", "--port", str(port)],
        port,
        workdir,
        {**expertgate_env(workdir), **extra, **(env or {})},
    )


@dataclass(frozen=True)
class Alone:
    """expertgate in front of the stub, nothing else: what the quick tools drive."""

    stub: Server
    expertgate: Server
    key: str  # a user's API key, for the Authorization header
    loadgen: Path


@contextlib.contextmanager
def expertgate_alone(workdir: Path, tokens: int = 16) -> Iterator[Alone]:
    """The stub and expertgate (on a fresh PostgreSQL database and Redis), started as
    bench/load/run.py starts them and ready; stopped and dropped on leaving. For
    bench/load/sweep.py and bench/load/profile.py (no LiteLLM, no interleaving)."""
    stub_exe, loadgen = build_tools(workdir)
    with contextlib.ExitStack() as stack:
        stub = start_stub(stub_exe, workdir, tokens=tokens)
        stack.callback(stub.stop)
        stack.enter_context(expertgate_backing(workdir))
        key = prepare_expertgate(workdir, stub.port)
        eg = start_expertgate(workdir)
        stack.callback(eg.stop)
        wait_ready(eg, "/readyz", 300)
        yield Alone(stub, eg, key, loadgen)


def audit_verify(workdir: Path) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "expertgate"), "audit", "verify"],
        cwd=workdir,
        env={**os.environ, **expertgate_env(workdir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return f"exit {done.returncode}: {(done.stdout + done.stderr).strip()[-400:]}"


# -- LiteLLM proxy -----------------------------------------------------------------


def litellm_available() -> bool:
    return LITELLM_BIN.exists()


def write_litellm_config(
    workdir: Path, name: str, stub_port: int, *, master_key: bool, database_url: str | None = None
) -> Path:
    """bare: no key, no DB; auth: the master key checked on every request; features: the
    master key plus its Postgres DB (virtual keys, budgets, spend tracking)."""
    config: dict[str, object] = {
        "model_list": [
            {
                "model_name": STUB_MODEL,
                "litellm_params": {
                    "model": f"{STUB_PROVIDER}/{STUB_MODEL}",
                    "api_base": f"http://127.0.0.1:{stub_port}/v1",
                    "api_key": "sk-stub",
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    # Without a master key LiteLLM 1.106 refuses to start unless told this is on purpose.
    general: dict[str, object] = (
        {"master_key": LITELLM_MASTER_KEY} if master_key else {"dangerously_permit_weak_or_unset_master_key": True}
    )
    if database_url is not None:
        general["database_url"] = database_url
    config["general_settings"] = general
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_litellm(workdir: Path, name: str, config: Path, workers: int) -> Server:
    """Spawns the proxy with ``workers`` worker processes; ready when /health/liveliness answers."""
    port = free_port()
    server = spawn(
        name,
        [
            str(LITELLM_BIN),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            str(workers),
        ],
        port,
        workdir,
        {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"},
    )
    return server


def litellm_budget_key(server: Server) -> str:
    """A virtual key with a budget (features-on profile): every request is checked and charged."""
    answer = post_json(
        server.port,
        "/key/generate",
        {"max_budget": 1_000_000.0, "user_id": BENCH_USER, "models": [STUB_MODEL]},
        {"authorization": f"Bearer {LITELLM_MASTER_KEY}"},
    )
    assert isinstance(answer, dict)
    return str(answer["key"])
