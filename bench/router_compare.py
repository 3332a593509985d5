"""Our gate next to semantic-router, in one session: same machine, same load, same encoder.

Runs bench.router_bench (main venv) and then bench.router_peer (bench/.venv-peer), one
after the other so they never compete for the CPU, with the same thread settings, then
prints one comparison table from bench/results/router.json and router_peer.json.
``uptime`` is printed before and after each side: on a shared machine the load average
says how much the timings are worth.

    make bench-router            # creates bench/.venv-peer if missing, then runs this
    .venv/bin/python -m bench.router_compare [--threads 1] [--skip-run]

Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MAIN_PY = ROOT / ".venv" / "bin" / "python"
PEER_PY = ROOT / "bench" / ".venv-peer" / "bin" / "python"


def uptime(label: str) -> None:
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"[{label}] uptime: {out}", flush=True)


def env(threads: int) -> dict[str, str]:
    out = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    if threads:
        # Every native pool (OpenMP, BLAS, the tokenizer's) the same size on both sides.
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            out[name] = str(threads)
        if threads == 1:
            out["TOKENIZERS_PARALLELISM"] = "false"
    return out


def run_side(label: str, python: Path, module: str, threads: int) -> None:
    if not python.exists():
        sys.exit(f"{python} is missing: run `make bench-router` (it creates the venvs)")
    uptime(f"before {label}")
    cmd = [str(python), "-m", module, "--threads", str(threads)]
    subprocess.run(cmd, cwd=ROOT, env=env(threads), check=True)
    uptime(f"after {label}")


def rows(ours: dict[str, Any], peer: dict[str, Any]) -> list[tuple[str, dict[str, Any], float | None]]:
    out: list[tuple[str, dict[str, Any], float | None]] = [
        (f"expertgate gate ({ours['router_version']})", ours, ours["conversations"]["accuracy_with_context"])
    ]
    names = {"general_route": "general as a route", "threshold_only": "no general route, threshold"}
    for key, variant in peer["variants"].items():
        out.append((f"{peer['system']}: {names.get(key, key)}", variant, None))
    return out


def table(ours: dict[str, Any], peer: dict[str, Any]) -> str:
    head = (
        "system",
        "accuracy",
        "macro-F1",
        "OOD (general) recall",
        "in-domain abstained",
        "ECE",
        "follow-ups (ctx / text)",
        "p50 ms",
        "p99 ms",
        "short p50/p99 ms",
        "batch req/s",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, r, with_ctx in rows(ours, peer):
        t, lat, short, rps = r["test"], r["latency_ms"], r["latency_short_ms"], r["throughput_rps"]
        conv = r["conversations"]
        follow = (
            f"{with_ctx:.3f} / {conv['accuracy_text_only']:.3f}"
            if with_ctx is not None
            else (f"- / {conv['accuracy_text_only']:.3f}")
        )
        cells = (
            name,
            f"{t['accuracy']:.3f}",
            f"{t['macro_f1']:.3f}",
            f"{t['general_recall']:.3f}",
            f"{t['in_domain_abstain_rate']:.3f}",
            f"{t['ece']:.3f}",
            follow,
            f"{lat['p50']:.1f}",
            f"{lat['p99']:.1f}",
            f"{short['p50']:.1f} / {short['p99']:.1f}",
            f"{rps['median']:.0f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP/BLAS threads per side (0: defaults)")
    parser.add_argument("--skip-run", action="store_true", help="only print the table from the last results")
    args = parser.parse_args()
    if not args.skip_run:
        run_side("expertgate gate", MAIN_PY, "bench.router_bench", args.threads)
        run_side("semantic-router", PEER_PY, "bench.router_peer", args.threads)
    ours = json.loads((RESULTS / "router.json").read_text())
    peer = json.loads((RESULTS / "router_peer.json").read_text())
    print()
    print(f"held-out test split: {ours['test']['n']} examples; follow-ups: {ours['conversations']['n']}")
    print(
        f"threads: ours {ours['torch_threads']}, peer {peer['torch_threads']}; "
        f"load average at the end: ours {ours['machine']['loadavg']}, peer {peer['machine']['loadavg']} "
        f"on {ours['machine']['cpus']} CPUs"
    )
    print(table(ours, peer))


if __name__ == "__main__":
    main()
