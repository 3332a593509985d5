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
request. A gateway cannot add less latency or cost less CPU than the floor it is built
on: floor-litellm is what any gateway that calls its models through litellm starts from.
eg-direct runs beside eg-pass on the same database and Redis.

Writes bench/results/load_floor.json and prints the table. Never fails on a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
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
RATE = 25.0
CONNECTIONS = 32


def start_floor(workdir: Path, mode: str, stub: Server) -> Server:
    """A bare gateway of bench/load/floor_app.py under uvicorn, EG_WORKERS workers."""
    port = free_port()
    argv = [
        str(VENV_BIN / "uvicorn"), "bench.load.floor_app:create", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(EG_WORKERS),
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


WHATIF = ROOT / "bench" / "load" / "whatif"


def run(workdir: Path, rounds: int, seconds: float, what_if: bool) -> dict[str, Any]:
    stub_exe, loadgen = build_tools(workdir)
    with contextlib.ExitStack() as stack:
        stub = start_stub(stub_exe, workdir, tokens=16)
        stack.callback(stub.stop)
        servers: dict[str, Server] = {}
        for mode in ("httpx", "litellm"):
            servers[f"floor-{mode}"] = start_floor(workdir, mode, stub)
            stack.callback(servers[f"floor-{mode}"].stop)
        if litellm_available():
            config = write_litellm_config(workdir, "litellm-bare", stub.port, master_key=False)
            servers["litellm-bare"] = start_litellm(workdir, "litellm-bare", config, EG_WORKERS)
            stack.callback(servers["litellm-bare"].stop)
        else:
            print("LiteLLM proxy venv missing (make bench-load builds bench/.venv-litellm): measuring without it")
        stack.enter_context(expertgate_backing(workdir))
        key = prepare_expertgate(workdir, stub.port)
        servers["expertgate"] = start_expertgate(workdir)
        stack.callback(servers["expertgate"].stop)
        wait_ready(servers["expertgate"], "/readyz", 300)
        if what_if:
            servers["eg-direct"] = start_expertgate(workdir, "eg-direct", {"PYTHONPATH": str(WHATIF)})
            stack.callback(servers["eg-direct"].stop)
            wait_ready(servers["eg-direct"], "/readyz", 300)
            if "what-if:" not in servers["eg-direct"].log.read_text(errors="replace"):
                raise RuntimeError(f"eg-direct started without the what-if; see {servers['eg-direct'].log}")
        for name, server in servers.items():
            if name.startswith("floor-"):
                wait_ready(server, "/health", 120)
        if "litellm-bare" in servers:
            wait_ready(servers["litellm-bare"], "/health/liveliness", 300)

        bodies = write_bodies(workdir)
        targets = [
            Target("direct", stub, bodies["stub"]),
            Target("floor-httpx", servers["floor-httpx"], bodies["stub"]),
            Target("floor-litellm", servers["floor-litellm"], bodies["stub"]),
            Target("eg-pass", servers["expertgate"], bodies["pass"], [f"Authorization: Bearer {key}"]),
        ]
        if "litellm-bare" in servers:
            targets.append(Target("litellm-bare", servers["litellm-bare"], bodies["stub"]))
        if what_if:
            targets.append(Target("eg-direct", servers["eg-direct"], bodies["pass"], [f"Authorization: Bearer {key}"]))
        bench = Bench(loadgen, stub)
        for server in {t.server.name: t.server for t in targets}.values():
            bench.measure_idle(server)
        phases: dict[str, list[dict[str, Any]]] = {"warmup": [], "overhead": [], "closed": []}
        print("warm-up", flush=True)
        for t in targets:
            phases["warmup"].append(bench.measure(t, 20, 2, 16))
        print(f"overhead: open loop {RATE:g}/s, {rounds} rounds; closed loop at {CONNECTIONS} connections", flush=True)
        for r in range(rounds):
            for t in rotate(targets, r):
                phases["overhead"].append({"round": r, **bench.measure(t, RATE, seconds, 64)})
            for t in rotate(targets, r):
                if t.name != "direct":
                    phases["closed"].append({"round": r, **bench.measure(t, 0, seconds, CONNECTIONS)})
        rss = {
            s.name: {"rss_mib": round(bench.peak_rss.get(s.name, 0.0), 1), "processes": len(s.pids())}
            for s in {t.server.name: t.server for t in targets}.values()
        }
    names = [t.name for t in targets]
    summary = report.summarize({**phases, "ladder": [], "saturation": []}, names, rss, bound_ms=40)
    if "eg-direct" in summary:  # report.summarize files every eg-* target under "expertgate"
        summary["eg-direct"].update(rss["eg-direct"])
    return {"phases": phases, "summary": summary, "targets": names}


def table(summary: dict[str, Any]) -> str:
    peer = summary.get("litellm-bare", {}).get("closed32_rps")
    lines = [
        "| target | overhead p50 ms | overhead p99 ms | RPS @32 conns | x LiteLLM bare | CPU-ms / req |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        if name == "direct":
            continue
        rps = row["closed32_rps"]
        ratio = f"{rps / peer:.2f}" if rps and peer else "-"
        lines.append(
            f"| {name} | {row['overhead_p50_ms']:.2f} | {row['overhead_p99_ms']:.2f} | {rps:.1f} | {ratio} "
            f"| {row['cpu_s_per_1000']:.2f} |"
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


if __name__ == "__main__":
    main()
