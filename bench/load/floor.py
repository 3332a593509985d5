"""How low can a Python gateway go on this machine? The floor under issue 10's goals.

    .venv/bin/python -m bench.load.floor [--rounds 3] [--seconds 8]   (or: make bench-load-floor)

Measures, in interleaved rounds of one run and with `make bench`'s load generator and
stub, two bare gateways (bench/load/floor_app.py, served by uvicorn with expertgate's
worker count) next to expertgate's pass-through and LiteLLM proxy (bare):

- direct          the C stub itself: the baseline
- floor-httpx     bytes forwarded with httpx: no parsing, no auth, nothing written
- floor-litellm   the request parsed and sent through expertgate's litellm client, the
                  answer built from its completion: nothing else
- eg-pass         expertgate, expert named (auth, quota, capacity, audit), as in `make bench`
- litellm-bare    LiteLLM proxy, no key, no DB, as in `make bench`
- eg-direct       a what-if, not the product: eg-pass with its LLM call made by httpx
                  instead of litellm (bench/load/whatif/sitecustomize.py), so that the
                  goal's cost in architecture can be weighed on a figure (--no-what-if)

Phases: overhead at 25 requests/s in open loop (target minus direct, same round, same
percentile) and throughput at 32 connections in closed loop, with each server's CPU per
request, the whole machine's and PostgreSQL + Redis's (bench/load/run.py's Bench). A
gateway cannot add less latency or cost less CPU than the floor it is built on:
floor-litellm is what any gateway that calls its models through litellm starts from.
eg-direct runs beside eg-pass on the same database and Redis. ``budget_2x`` in the
results is what twice LiteLLM's throughput leaves the gateway, from the measured parts.

Writes bench/results/load_floor.json and prints the table. Never fails on a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load import report
from bench.load.run import Bench, Target, rotate, write_bodies
from bench.load.servers import (
    EG_WORKERS,
    ROOT,
    STUB_MODEL,
    STUB_PROVIDER,
    VENV_BIN,
    Server,
    build_tools,
    expertgate_backing,
    free_port,
    litellm_available,
    prepare_expertgate,
    spawn,
    start_expertgate,
    start_litellm,
    start_stub,
    wait_ready,
    write_litellm_config,
)

OUT = ROOT / "bench" / "results" / "load_floor.json"
WHATIF = ROOT / "bench" / "load" / "whatif"  # eg-direct's sitecustomize.py
WHAT_IF_MARK = "what-if:"  # what that module prints in every process that imports it
RATE = 25.0
CONNECTIONS = 32


def start_floor(workdir: Path, mode: str, stub: Server, workers: int = EG_WORKERS) -> Server:
    """A bare gateway of bench/load/floor_app.py under uvicorn with ``workers`` workers."""
    port = free_port()
    argv = [
        str(VENV_BIN / "uvicorn"), "bench.load.floor_app:create", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    env = {
        "FLOOR_MODE": mode,
        "FLOOR_UPSTREAM": f"http://127.0.0.1:{stub.port}/v1",
        "FLOOR_MODEL": f"{STUB_PROVIDER}/{STUB_MODEL}",
        "PYTHONPATH": str(ROOT),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    return spawn(f"floor-{mode}", argv, port, workdir, env)


def check_what_if(server: Server, workers: int = EG_WORKERS) -> None:
    """Refuses a what-if server whose processes did not all load the what-if: Python only
    warns when a sitecustomize fails to import, and the run would measure litellm."""
    log = server.log.read_text(errors="replace")
    loaded = log.count(WHAT_IF_MARK)
    if loaded < workers + 1 or "Error in sitecustomize" in log:  # the supervisor and each worker
        raise RuntimeError(
            f"{server.name}: the what-if is loaded in {loaded} of {workers + 1} processes; see {server.log}"
        )


def start_servers(
    stack: contextlib.ExitStack, workdir: Path, stub: Server, what_if: bool
) -> tuple[dict[str, Server], str]:
    """Every gateway of the run, ready, each stopped when ``stack`` closes; and the
    expertgate user's API key. LiteLLM and the floors boot while expertgate ingests."""
    servers: dict[str, Server] = {}

    def started(server: Server) -> None:
        servers[server.name] = server
        stack.callback(server.stop)

    for mode in ("httpx", "litellm"):
        started(start_floor(workdir, mode, stub))
    if litellm_available():
        config = write_litellm_config(workdir, "litellm-bare", stub.port, master_key=False)
        started(start_litellm(workdir, "litellm-bare", config, EG_WORKERS))
    else:
        print("LiteLLM proxy venv missing (make bench-load builds bench/.venv-litellm): measuring without it")
    stack.enter_context(expertgate_backing(workdir))
    key = prepare_expertgate(workdir, stub.port)
    started(start_expertgate(workdir))
    if what_if:
        # Its own PYTHONPATH, so that Python imports bench/load/whatif/sitecustomize.py at
        # start in the supervisor and in every worker: nothing else differs from eg-pass.
        started(start_expertgate(workdir, "eg-direct", {"PYTHONPATH": str(WHATIF)}))
    for server in servers.values():
        if server.name.startswith("floor-"):
            wait_ready(server, "/health", 300)
        elif server.name.startswith("litellm"):
            wait_ready(server, "/health/liveliness", 300)
        else:
            wait_ready(server, "/readyz", 300)
    if what_if:
        check_what_if(servers["eg-direct"])
        if WHAT_IF_MARK in servers["expertgate"].log.read_text(errors="replace"):
            raise RuntimeError("expertgate (eg-pass) loaded the what-if")
    return servers, key


def run(workdir: Path, rounds: int, seconds: float, what_if: bool) -> dict[str, Any]:
    """Starts everything, measures, stops. Returns the runs of each phase (``warmup``,
    ``overhead``: open loop at RATE, every round first; ``closed``: CONNECTIONS
    connections, every round after), the per-target summary and the target names."""
    stub_exe, loadgen = build_tools(workdir)
    with contextlib.ExitStack() as stack:
        stub = start_stub(stub_exe, workdir, tokens=16)
        stack.callback(stub.stop)
        servers, key = start_servers(stack, workdir, stub, what_if)
        bodies = write_bodies(workdir)
        auth = [f"Authorization: Bearer {key}"]
        targets = [
            Target("direct", stub, bodies["stub"]),
            Target("floor-httpx", servers["floor-httpx"], bodies["stub"]),
            Target("floor-litellm", servers["floor-litellm"], bodies["stub"]),
            Target("eg-pass", servers["expertgate"], bodies["pass"], auth),
        ]
        if "litellm-bare" in servers:
            targets.append(Target("litellm-bare", servers["litellm-bare"], bodies["stub"]))
        if what_if:
            targets.append(Target("eg-direct", servers["eg-direct"], bodies["pass"], auth))
        measured = {t.server.name: t.server for t in targets}
        bench = Bench(loadgen, stub)
        for server in measured.values():
            bench.measure_idle(server)
        phases: dict[str, list[dict[str, Any]]] = {"warmup": [], "overhead": [], "closed": []}
        print("warm-up", flush=True)
        for t in targets:
            phases["warmup"].append(bench.measure(t, 20, 2, 16))
        # As in `make bench`: the light-rate rounds first, then the saturating ones, so that
        # no overhead run comes right after PostgreSQL took a closed loop's writes.
        print(f"overhead: open loop {RATE:g}/s, {rounds} rounds", flush=True)
        for r in range(rounds):
            for t in rotate(targets, r):
                phases["overhead"].append({"round": r, **bench.measure(t, RATE, seconds, 64)})
        print(f"closed loop at {CONNECTIONS} connections, {rounds} rounds", flush=True)
        for r in range(rounds):
            for t in rotate(targets, r):
                if t.name != "direct":
                    phases["closed"].append({"round": r, **bench.measure(t, 0, seconds, CONNECTIONS)})
        rss = {
            s.name: {"rss_mib": round(bench.peak_rss.get(s.name, 0.0), 1), "processes": len(s.pids())}
            for s in measured.values()
        }
    names = [t.name for t in targets]
    server_of = {t.name: t.server.name for t in targets}
    summary = report.summarize({**phases, "ladder": [], "saturation": []}, names, rss, 40, server_of)
    for name, row in summary.items():
        row.update(machine_figures([r for r in phases["closed"] if r["target"] == name]))
    return {"phases": phases, "summary": summary, "targets": names, "budget_2x": budget_2x(summary)}


def _per_request_ms(runs: list[dict[str, Any]], *keys: str) -> float | None:
    values = [sum(r[k] for k in keys) * 1000 / r["ok"] for r in runs if r["ok"]]
    return round(statistics.median(values), 3) if values else None


def machine_figures(closed: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over a target's closed-loop runs: how busy the machine was, and the CPU per
    answered request of the whole machine, of PostgreSQL + Redis, and of stub + loadgen."""
    busy = [r["machine_busy_cores"] for r in closed if r.get("machine_busy_cores") is not None]
    return {
        "machine_busy_cores": round(statistics.median(busy), 2) if busy else None,
        "machine_cpu_ms_per_request": _per_request_ms(closed, "machine_cpu_s"),
        "services_cpu_ms_per_request": _per_request_ms(closed, "services_cpu_s"),
        "tools_cpu_ms_per_request": _per_request_ms(closed, "stub_cpu_s", "loadgen_cpu_s"),
    }


def budget_2x(summary: dict[str, Any]) -> dict[str, Any] | None:
    """What twice LiteLLM's throughput leaves expertgate's server, from this run's figures:
    the machine's CPU per request at that rate (as busy as in eg-pass's closed loop), less
    what PostgreSQL, Redis, the stub and the load generator took per eg-pass request."""
    peer, eg = summary.get("litellm-bare", {}), summary.get("eg-pass", {})
    needed = ("machine_busy_cores", "services_cpu_ms_per_request", "tools_cpu_ms_per_request")
    if not peer.get("closed32_rps") or any(eg.get(k) is None for k in needed):
        return None
    rate = 2 * peer["closed32_rps"]
    machine = eg["machine_busy_cores"] * 1000 / rate
    server = machine - eg["services_cpu_ms_per_request"] - eg["tools_cpu_ms_per_request"]
    return {
        "rps": round(rate, 1),
        "machine_cpu_ms_per_request": round(machine, 3),
        "server_cpu_ms_per_request": round(server, 3),
        "eg_pass_server_cpu_ms_per_request": eg["cpu_s_per_1000"],
        "floor_litellm_server_cpu_ms_per_request": summary.get("floor-litellm", {}).get("cpu_s_per_1000"),
    }


def _cell(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(summary: dict[str, Any]) -> str:
    peer = summary.get("litellm-bare", {}).get("closed32_rps")
    lines = [
        "| target | overhead p50 ms | overhead p99 ms | RPS @32 conns | x LiteLLM bare | CPU-ms / req "
        "| machine CPU-ms / req | PG + Redis CPU-ms / req | busy cores |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        if name == "direct":
            continue
        rps = row["closed32_rps"]
        lines.append(
            f"| {name} | {_cell(row['overhead_p50_ms'])} | {_cell(row['overhead_p99_ms'])} | {_cell(rps, 1)} "
            f"| {_cell(rps / peer if rps and peer else None)} | {_cell(row['cpu_s_per_1000'])} "
            f"| {_cell(row['machine_cpu_ms_per_request'])} | {_cell(row['services_cpu_ms_per_request'])} "
            f"| {_cell(row['machine_busy_cores'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8, help="length of each run")
    parser.add_argument("--no-what-if", action="store_true", help="leave out eg-direct (expertgate without litellm)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="eg-floor-") as tmp:
        results = run(Path(tmp), args.rounds, args.seconds, not args.no_what_if)
    results["conditions"] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "workers": EG_WORKERS,
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
        "rate": RATE,
        "connections": CONNECTIONS,
        "wall_s": round(time.monotonic() - t0),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results["summary"]))
    if results["budget_2x"]:
        b = results["budget_2x"]
        print(
            f"2x LiteLLM = {b['rps']:.0f} requests/s: {b['machine_cpu_ms_per_request']:.2f} CPU-ms per request for "
            f"the machine, {b['server_cpu_ms_per_request']:.2f} of it for the gateway "
            f"(eg-pass: {b['eg_pass_server_cpu_ms_per_request']}, floor-litellm: {b['floor_litellm_server_cpu_ms_per_request']})"
        )


if __name__ == "__main__":
    main()
