"""expertgate under load, side by side with LiteLLM proxy, against the same stub backend.

    .venv/bin/python -m bench.load.run [--quick] [--no-litellm]   (or: make bench-load)

One run starts every server once and measures the targets in interleaved rounds, so
that drift on a shared machine hits them all alike:

- direct            the C stub itself (bench/load/stub.c): the baseline
- eg-pass           expertgate, expert named (`model: general`: the gate's decision is not
                    used and the generalist has no index), API key auth, quota admission
                    and settlement, audit event
- eg-full           expertgate, `model: auto`: encoder + gate, retrieval from the routed
                    expert's index, quota, audit
- litellm-bare      LiteLLM proxy (pinned, own venv), workers = cores, no DB, no key
- litellm-auth      the same with its master key checked on every request (no DB)
- litellm-features  the master key, Postgres and a virtual key with a budget (--litellm-db;
                    its Prisma engines are downloaded on first use, so offline it cannot start)

Phases: overhead (open loop at a light rate; target minus direct at the same percentile,
same round), ladder (open-loop rates going up; the highest with p99 under the bound, no
errors and the offered rate achieved; a failed step is tried once more), closed (32 connections: throughput), saturation
(the stub limited to `cap` slots of `delay` ms: how much of the backend's own throughput
each gateway keeps), stream (`stream: true` through direct, eg-pass and litellm-bare: the
overhead at the light rate and 32 connections in closed loop, each request read to its
`[DONE]`). The load generator is bench/load/loadgen.c (open loop counts latency
from when each request was due). CPU-seconds of each server and all its children come
from /proc, around every measurement.

Writes bench/results/load.json and docs/load.svg (with --out elsewhere: the JSON there, the plot
beside it), prints the table. Never fails on a timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.load import report
from bench.load.servers import (
    EG_REDIS_URL,
    EG_WORKERS,
    LITELLM_MASTER_KEY,
    PG_URL,
    STUB_MODEL,
    Server,
    audit_verify,
    build_tools,
    configure_stub,
    expertgate_backing,
    expertgate_database_url,
    litellm_available,
    litellm_budget_key,
    machine_cpu_seconds,
    prepare_expertgate,
    services_cpu_seconds,
    start_expertgate,
    start_litellm,
    start_stub,
    wait_ready,
    write_litellm_config,
)

OUT = Path(__file__).resolve().parents[1] / "results" / "load.json"
NOT_LADDERED = frozenset({"litellm-auth", "litellm-features"})
SVG = Path(__file__).resolve().parents[2] / "docs" / "load.svg"
QUESTION = "What is the liability cap in our master services agreement, and does it cover data breaches?"


@dataclass
class Target:
    name: str
    server: Server
    body: Path
    headers: list[str] = field(default_factory=list)
    expect: str = "choices"  # text every good answer holds (a stream's last event: "[DONE]")
    ok_total: int = 0
    answered_total: int = 0


@dataclass
class Plan:
    overhead_rate: float
    overhead_s: float
    rounds: int
    ladder: list[float]
    ladder_s: float
    closed_s: float
    closed_rounds: int
    saturation_s: float
    p99_bound_ms: float
    connections: int = 32
    sat_delay_ms: float = 50.0
    sat_cap: int = 8
    stream_rounds: int = 2  # of the light-rate overhead; one closed-loop run each
    stream_s: float = 6


# The overhead phase runs at a light rate, so that it shows the latency a gateway adds to
# one request rather than its queueing; the ladder and the closed loop show the load.
FULL = Plan(
    overhead_rate=25,
    overhead_s=8,
    rounds=3,
    ladder=[25, 50, 100, 150, 200, 300, 400, 600],
    ladder_s=5,
    closed_s=8,
    closed_rounds=2,
    saturation_s=8,
    p99_bound_ms=40,
)
QUICK = Plan(
    overhead_rate=25,
    overhead_s=3,
    rounds=1,
    ladder=[50, 200],
    ladder_s=2,
    closed_s=3,
    closed_rounds=1,
    saturation_s=3,
    p99_bound_ms=40,
    stream_rounds=1,
    stream_s=3,
)


class Bench:
    def __init__(self, loadgen: Path, stub: Server) -> None:
        self.loadgen = loadgen
        self.stub = stub
        self.stub_cpu = 0.0
        self.stub_requests = 0
        self.loadgen_cpu = 0.0
        self.loadgen_requests = 0
        self.peak_rss: dict[str, float] = {}  # server name -> MiB, sampled after every run
        self.idle: dict[str, float] = {}  # server name -> cores used at rest

    def measure(self, target: Target, rate: float, duration: float, connections: int) -> dict[str, Any]:
        """One loadgen run against ``target``; rate 0 = closed loop at ``connections``."""
        argv = [
            str(self.loadgen),
            "-p",
            str(target.server.port),
            "-b",
            str(target.body),
            "-r",
            str(rate),
            "-c",
            str(connections),
            "-d",
            str(duration),
            "-e",
            target.expect,
            "-T",
            "10",
        ]
        for h in target.headers:
            argv += ["-H", h]
        pids = target.server.pids()
        before, stub_before = target.server.cpu(), self.stub.cpu()
        machine_before, services_before = machine_cpu_seconds(), services_cpu_seconds()
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        machine_cpu = machine_cpu_seconds() - machine_before
        services_cpu = services_cpu_seconds() - services_before
        server_cpu = target.server.cpu() - before
        result: dict[str, Any] = json.loads(done.stdout)
        stub_cpu = self.stub.cpu() - stub_before
        answered = result["ok"] + result["errors"]["status_4xx"] + result["errors"]["status_5xx"]
        target.ok_total += result["ok"]
        target.answered_total += answered
        self.stub_cpu += stub_cpu
        self.stub_requests += result["ok"]
        self.loadgen_cpu += result["loadgen_cpu_s"]
        self.loadgen_requests += result["sent"]
        result.update(
            target=target.name,
            server_cpu_s=round(server_cpu, 3),
            server_processes=len(pids),
            cpu_ms_per_request=round(server_cpu * 1000 / result["ok"], 3) if result["ok"] else None,
            stub_cpu_s=round(stub_cpu, 3),
            # The whole machine and PostgreSQL + Redis over the load generator's run.
            machine_cpu_s=round(machine_cpu, 3),
            machine_busy_cores=round(machine_cpu / result["elapsed_s"], 3) if result["elapsed_s"] else None,
            services_cpu_s=round(services_cpu, 3),
        )
        name = target.server.name
        self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), target.server.rss())
        self.settle(target.server)
        errors = sum(result["errors"].values())
        print(
            f"  {target.name:<17} {'closed' if rate <= 0 else f'{rate:g}/s':>7}  ok {result['ok']:>6}  "
            f"rps {result['rps']:>7.1f}  p50 {result['latency_ms']['p50']:>8.2f}  p99 {result['latency_ms']['p99']:>8.2f} ms"
            f"  errors {errors}  cpu {result['cpu_ms_per_request'] or 0:.2f} ms/req",
            flush=True,
        )
        return result

    def measure_idle(self, server: Server, window_s: float = 2.0) -> None:
        """The server's own CPU use at rest (LiteLLM's workers keep background tasks)."""
        before = server.cpu()
        time.sleep(window_s)
        self.idle[server.name] = (server.cpu() - before) / window_s

    def settle(self, server: Server, window_s: float = 0.5, timeout_s: float = 60) -> None:
        """Waits until ``server`` is back at rest: an overloaded open-loop run leaves
        requests in flight after the load generator gave up on them, and they must not
        run into the next target's measurement. At rest = its idle CPU + 0.1 core."""
        limit = self.idle.get(server.name, 0.0) + 0.1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            before = server.cpu()
            time.sleep(window_s)
            if (server.cpu() - before) / window_s <= limit:
                return


def write_bodies(workdir: Path) -> dict[str, Path]:
    """Request bodies ``stub``, ``pass`` and ``full``, each also as ``<name>-stream`` (``stream: true``)."""
    bodies = {}
    for name, model in (("stub", STUB_MODEL), ("pass", "general"), ("full", "auto")):
        for suffix, stream in (("", False), ("-stream", True)):
            body: dict[str, Any] = {
                "model": model,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": QUESTION}],
            }
            if stream:
                body["stream"] = True
            path = workdir / f"body-{name}{suffix}.json"
            path.write_text(json.dumps(body))
            bodies[name + suffix] = path
    return bodies


def rotate(targets: list[Target], k: int) -> list[Target]:
    k %= len(targets)
    return targets[k:] + targets[:k]


def audit_rows(workdir: Path) -> dict[str, int]:
    with psycopg.connect(expertgate_database_url(workdir)) as conn:
        chained = conn.execute("select count(*) from audit_events where action = 'chat.completion'").fetchone()
        pending = conn.execute("select count(*) from audit_outbox").fetchone()
    return {"chained": int(chained[0] if chained else 0), "outbox_pending": int(pending[0] if pending else 0)}


def wait_audit(workdir: Path, expected: int, timeout_s: float = 60) -> dict[str, int]:
    """Audit rows once the outbox (if any) has drained, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    rows = audit_rows(workdir)
    while rows["chained"] < expected and time.monotonic() < deadline:
        time.sleep(1)
        rows = audit_rows(workdir)
    return rows


@dataclass
class Started:
    stub: Server
    servers: dict[str, Server]
    key: str  # expertgate API key of the bench user
    litellm_key: str | None  # the budgeted virtual key of litellm-features, when it runs
    litellm_features: str  # what became of the litellm-features profile


def start_all(
    workdir: Path, with_litellm: bool, litellm_db: bool, workers: int, baseline: Path | None = None
) -> Started:
    """Starts every server; the LiteLLM proxies boot while expertgate ingests its samples."""
    stub_exe, _ = build_tools(workdir)
    stub = start_stub(stub_exe, workdir, tokens=16)
    servers: dict[str, Server] = {}
    try:
        if with_litellm:
            for name, master_key in (("litellm-bare", False), ("litellm-auth", True)):
                config = write_litellm_config(workdir, name, stub.port, master_key=master_key)
                servers[name] = start_litellm(workdir, name, config, workers)
        if with_litellm and litellm_db:
            config = write_litellm_config(workdir, "litellm-features", stub.port, master_key=True, database_url=PG_URL)
            servers["litellm-features"] = start_litellm(workdir, "litellm-features", config, workers)
        started = time.monotonic()
        key = prepare_expertgate(workdir, stub.port)
        print(f"expertgate prepared (sample ingest, key, quotas) in {time.monotonic() - started:.0f} s", flush=True)
        servers["expertgate"] = start_expertgate(workdir)
        print(f"expertgate ready in {wait_ready(servers['expertgate'], '/readyz', 300):.0f} s", flush=True)
        if baseline is not None:  # the same database, key and quotas: only the code differs
            servers["expertgate-base"] = start_expertgate(workdir, "expertgate-base", source=baseline)
            print(f"expertgate-base ready in {wait_ready(servers['expertgate-base'], '/readyz', 300):.0f} s", flush=True)
        for name in ("litellm-bare", "litellm-auth"):
            if name in servers:
                print(
                    f"{name} ready after {wait_ready(servers[name], '/health/liveliness', 300):.0f} s more", flush=True
                )
        litellm_key = None
        features = "not tried (--litellm-db)"
        if "litellm-features" in servers:
            # Its Prisma engines are downloaded on first use: offline it exits here.
            try:
                wait_ready(servers["litellm-features"], "/health/liveliness", 300)
                litellm_key = litellm_budget_key(servers["litellm-features"])
                features = "measured"
            except RuntimeError as exc:  # recorded in the results; the other targets go on
                failed = servers.pop("litellm-features")
                failed.stop()
                tail = [line for line in failed.log.read_text(errors="replace").splitlines() if "rror" in line]
                features = f"could not start: {' | '.join(tail[-3:]) or exc}"
                print(f"litellm-features {features}", flush=True)
    except BaseException:
        for server in [*servers.values(), stub]:
            server.stop()
        raise
    return Started(stub, servers, key, litellm_key, features)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases, one round (development)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy targets")
    parser.add_argument(
        "--litellm-db",
        action="store_true",
        help="also try LiteLLM with its Postgres DB and budgets (needs Prisma engines)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="LiteLLM workers (default: cores)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of an earlier commit (git worktree): its backend is measured beside this one, "
        "as eg-pass@base and eg-full@base, on the same database",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default="", help="conditions to record, e.g. 'other jobs shared the machine'")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    with_litellm = not args.no_litellm and litellm_available()
    if not args.no_litellm and not with_litellm:
        print("LiteLLM proxy venv missing (make bench-load builds bench/.venv-litellm): measuring without it")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="eg-load-") as tmp:
        workdir = Path(tmp)
        _, loadgen = build_tools(workdir)
        with expertgate_backing(workdir):
            started = start_all(workdir, with_litellm, args.litellm_db, args.workers, args.baseline)
            try:
                results = run_phases(workdir, plan, loadgen, started)
            finally:
                for server in [*started.servers.values(), started.stub]:
                    server.stop()
        results["litellm_features"] = started.litellm_features
    results["conditions"] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "litellm_workers": args.workers,
        "expertgate": {"workers": EG_WORKERS, "database": "postgresql (fresh database)", "redis": EG_REDIS_URL},
        "plan": plan.__dict__,
        "note": args.note,
        "baseline": str(args.baseline) if args.baseline else None,
        "wall_s": round(time.monotonic() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    # The plot goes to docs/ with the results of record; a run written elsewhere keeps its
    # plot beside its JSON.
    svg = SVG if args.out.resolve() == OUT.resolve() else args.out.with_suffix(".svg")
    report.write_svg(results, svg)
    print()
    print(report.table(results))
    print(f"\nwrote {args.out} and {svg} in {time.monotonic() - t0:.0f} s")


def run_phases(workdir: Path, plan: Plan, loadgen: Path, started: Started) -> dict[str, Any]:
    stub, servers, key, litellm_key = started.stub, started.servers, started.key, started.litellm_key
    bodies = write_bodies(workdir)
    auth = [f"Authorization: Bearer {key}"]
    targets = [
        Target("direct", stub, bodies["stub"]),
        Target("eg-pass", servers["expertgate"], bodies["pass"], auth),
        Target("eg-full", servers["expertgate"], bodies["full"], auth),
    ]
    if "expertgate-base" in servers:
        targets.append(Target("eg-pass@base", servers["expertgate-base"], bodies["pass"], auth))
        targets.append(Target("eg-full@base", servers["expertgate-base"], bodies["full"], auth))
    if "litellm-bare" in servers:
        targets.append(Target("litellm-bare", servers["litellm-bare"], bodies["stub"]))
        targets.append(
            Target(
                "litellm-auth", servers["litellm-auth"], bodies["stub"], [f"Authorization: Bearer {LITELLM_MASTER_KEY}"]
            )
        )
    if "litellm-features" in servers and litellm_key:
        targets.append(
            Target(
                "litellm-features",
                servers["litellm-features"],
                bodies["stub"],
                [f"Authorization: Bearer {litellm_key}"],
            )
        )
    bench = Bench(loadgen, stub)
    phases: dict[str, list[dict[str, Any]]] = {
        "warmup": [],
        "overhead": [],
        "ladder": [],
        "closed": [],
        "saturation": [],
        "stream": [],
    }

    for server in {t.server.name: t.server for t in targets}.values():
        bench.measure_idle(server)
    print("idle CPU (cores): " + ", ".join(f"{k} {v:.2f}" for k, v in bench.idle.items()), flush=True)
    print("warm-up", flush=True)
    for t in targets:
        phases["warmup"].append(bench.measure(t, 20, 2, 16))

    print(f"overhead: open loop {plan.overhead_rate:g}/s, {plan.rounds} rounds", flush=True)
    for r in range(plan.rounds):
        for t in rotate(targets, r):
            phases["overhead"].append({"round": r, **bench.measure(t, plan.overhead_rate, plan.overhead_s, 64)})

    print(f"ladder: open-loop rates until p99 > {plan.p99_bound_ms:g} ms, an error, or < 98% achieved", flush=True)
    # litellm-auth would repeat litellm-bare's ladder (its other figures show what the key
    # costs); the stub is checked at the top rate only (that the load generator holds it).
    alive = [t for t in targets if t.name not in NOT_LADDERED]
    for rate in plan.ladder:
        for t in list(alive):
            if t.name == "direct" and rate != plan.ladder[-1]:
                continue
            # A failed step is measured once more before the target drops out: one noisy
            # window on a shared machine should not end its ladder.
            for attempt in (1, 2):
                run = bench.measure(t, rate, plan.ladder_s, 256)
                passed = (
                    run["latency_ms"]["p99"] <= plan.p99_bound_ms
                    and sum(run["errors"].values()) == 0
                    and run["ok"] >= 0.98 * rate * plan.ladder_s
                )
                phases["ladder"].append({**run, "passed": passed, "attempt": attempt})
                if passed:
                    break
            if not passed:
                alive.remove(t)

    print(f"closed loop: {plan.connections} connections, {plan.closed_rounds} rounds", flush=True)
    for r in range(plan.closed_rounds):
        for t in rotate(targets, r):
            phases["closed"].append({"round": r, **bench.measure(t, 0, plan.closed_s, plan.connections)})

    print(
        f"saturation: stub limited to {plan.sat_cap} slots x {plan.sat_delay_ms:g} ms "
        f"(= {plan.sat_cap * 1000 / plan.sat_delay_ms:.0f} RPS), closed loop {plan.connections}",
        flush=True,
    )
    configure_stub(stub, plan.sat_delay_ms, plan.sat_cap)
    for t in targets:
        phases["saturation"].append(bench.measure(t, 0, plan.saturation_s, plan.connections))
    configure_stub(stub, 0, 0)

    streams = [
        Target("direct-stream", stub, bodies["stub-stream"], expect="[DONE]"),
        Target("eg-pass-stream", servers["expertgate"], bodies["pass-stream"], auth, expect="[DONE]"),
    ]
    if "litellm-bare" in servers:
        streams.append(Target("litellm-bare-stream", servers["litellm-bare"], bodies["stub-stream"], expect="[DONE]"))
    print(f"streaming: open loop {plan.overhead_rate:g}/s and closed loop {plan.connections}", flush=True)
    for t in streams:
        phases["stream"].append({"round": -1, **bench.measure(t, 20, 2, 16)})  # warm-up
    for r in range(plan.stream_rounds):
        for t in rotate(streams, r):
            run = bench.measure(t, plan.overhead_rate, plan.stream_s, 64)
            phases["stream"].append({"round": r, **run})
    for t in streams:
        phases["stream"].append({"round": 0, **bench.measure(t, 0, plan.stream_s, plan.connections)})

    eg = [t for t in [*targets, *streams] if t.name.startswith("eg-")]
    ok = sum(t.ok_total for t in eg)
    answered = sum(t.answered_total for t in eg)
    rows = wait_audit(workdir, ok)
    audit = {
        "expertgate_ok": ok,
        "expertgate_answered": answered,
        **rows,
        "lost": max(0, ok - rows["chained"]),
        "verify": audit_verify(workdir),
    }
    servers_info = {
        name: {
            "rss_mib": round(bench.peak_rss.get(s.name, s.rss()), 1),
            "rss_end_mib": round(s.rss(), 1),
            "processes": len(s.pids()),
        }
        for name, s in {**servers, "stub": stub}.items()
    }
    summary = report.summarize(phases, [t.name for t in targets], servers_info, plan.p99_bound_ms)
    stream_summary = report.summarize_stream(phases["stream"], [t.name for t in streams])
    return {
        "phases": phases,
        "servers": servers_info,
        "audit": audit,
        "stream_summary": stream_summary,
        "tool_costs": {
            "stub_cpu_ms_per_request": round(bench.stub_cpu * 1000 / max(1, bench.stub_requests), 4),
            "loadgen_cpu_ms_per_request": round(bench.loadgen_cpu * 1000 / max(1, bench.loadgen_requests), 4),
        },
        "summary": summary,
        "goals": report.goals(summary, audit, stream_summary),
    }


if __name__ == "__main__":
    main()
