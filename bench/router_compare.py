"""Our gate next to semantic-router, in one session: same machine, same load, same encoder.

Starts bench.router_bench (main venv), waits until it has done its untimed work (loading,
routing the test split and the follow-ups), then bench.router_peer (bench/.venv-peer:
tuning semantic-router on validation, routing the test split). Then it gives the timing
steps (a warm-up, latency in chunks of 50 requests, batched throughput) to the three
systems in turns, one at a time: the CPU is never shared between them, and a change in
the machine's load (other jobs) hits all of them alike. Both processes use the same
thread settings. Finally it prints one comparison table from bench/results/router.json
and router_peer.json. ``uptime`` is printed along the way: on a shared machine the load
average says how much the timings are worth.

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

from bench.router_common import PROTOCOL

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


class Side:
    """One benchmark process, driven step by step over its stdin/stdout (--serve-timing)."""

    def __init__(self, label: str, python: Path, module: str, threads: int) -> None:
        if not python.exists():
            sys.exit(f"{python} is missing: run `make bench-router` (it creates the venvs)")
        self.label = label
        self.proc = subprocess.Popen(
            [str(python), "-m", module, "--threads", str(threads), "--serve-timing"],
            cwd=ROOT,
            env=env(threads),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def _until(self, word: str) -> list[str]:
        """Echo the side's output until its protocol line ``word``; return that line's words."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(PROTOCOL):
                words = line[len(PROTOCOL) :].split()
                if words and words[0] == word:
                    return words[1:]
                raise RuntimeError(f"{self.label}: expected {word}, got {line!r}")
            print(f"[{self.label}] {line}", end="", flush=True)
        raise RuntimeError(f"{self.label} exited ({self.proc.wait()}) before {word}")

    def ready(self) -> tuple[list[str], list[str]]:
        """Wait until the side has routed everything untimed; its systems and timing steps."""
        words = self._until("READY")
        return words[0].split(","), words[1:]

    def run(self, system: str, step: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"RUN {system} {step}\n")
        self.proc.stdin.flush()
        self._until("DONE")

    def finish(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("END\n")
        self.proc.stdin.close()
        for line in self.proc.stdout:
            print(f"[{self.label}] {line}", end="", flush=True)
        if self.proc.wait() != 0:
            raise RuntimeError(f"{self.label} failed with exit code {self.proc.returncode}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_both(threads: int) -> None:
    """Prepare each side in turn (untimed work never overlaps), then time them in turns."""
    sides: list[Side] = []
    try:
        uptime("start")
        ours = Side("expertgate", MAIN_PY, "bench.router_bench", threads)
        sides.append(ours)
        our_systems, steps = ours.ready()
        uptime("expertgate ready")
        peer = Side("semantic-router", PEER_PY, "bench.router_peer", threads)
        sides.append(peer)
        peer_systems, peer_steps = peer.ready()
        if peer_steps != steps:
            raise RuntimeError(f"the two sides plan different timing steps: {steps} vs {peer_steps}")
        turns = [(ours, s) for s in our_systems] + [(peer, s) for s in peer_systems]
        uptime("timing starts")
        for i, step in enumerate(steps):
            # Rotate who goes first, so no system always runs right after the same one.
            for side, system in turns[i % len(turns) :] + turns[: i % len(turns)]:
                side.run(system, step)
        uptime("timing done")
        for side in sides:
            side.finish()
    finally:
        for side in sides:
            side.kill()


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
        "overhead p50 ms",
        "CPU ms/request p50",
        "batch req/s",
        "batch CPU ms/request",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, r, with_ctx in rows(ours, peer):
        t, lat, rps = r["test"], r["latency_ms"], r["throughput_rps"]
        short = lat["short"]
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
            f"{lat['overhead']['p50']:.2f}",
            f"{lat['cpu_ms']['p50']:.1f}",
            f"{rps['median']:.0f}",
            f"{rps['cpu_ms_per_request']:.1f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP/BLAS threads per side (0: defaults)")
    parser.add_argument("--skip-run", action="store_true", help="only print the table from the last results")
    args = parser.parse_args()
    if not args.skip_run:
        run_both(args.threads)
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
