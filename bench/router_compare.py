"""Our gates, two baselines and semantic-router, in one session: same machine, same load,
same encoder, same data.

Starts bench.router_bench (main venv), waits until it has done its untimed work (loading
the shipped and the previous gate, routing every set, fitting the kNN and logistic
regression baselines), then bench.router_peer (bench/.venv-peer: tuning semantic-router
on validation, routing every set). Then it gives the timing steps (a warm-up, latency in
chunks of 50 requests, batched throughput) to the timed systems (both gates, both peer
variants) in turns, one at a time: the CPU is never shared between them, and a change in
the machine's load (other jobs) hits all of them alike. Both processes use the same
thread settings and the same public dev set (``--dev``, passed on to both). ``uptime`` is
printed along the way: on a shared machine the load average says how much the timings
are worth.

Finally it prints, from bench/results/router.json and router_peer.json, and writes to
``--out-md`` (default bench/results/router_table.md):

- quality: one row per system; macro-F1, recall per expert (general: the out-of-domain
  recall) and ECE on the held-out test split, the public dev set and the follow-ups,
  with p50/p99 latency for the timed systems;
- accuracy per source on the public dev set (left out when the dev set is missing);
- latency and throughput of the timed systems.

    make bench-router            # creates bench/.venv-peer if missing, then runs this
    .venv/bin/python -m bench.router_compare [--threads 1] [--dev PATH] [--out-md PATH] [--skip-run]

Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.router_common import DEV, EXPERTS, FOLLOW_UPS, FOLLOW_UPS_CONTEXT, PROTOCOL, TEST, dev_args

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MAIN_PY = ROOT / ".venv" / "bin" / "python"
PEER_PY = ROOT / "bench" / ".venv-peer" / "bin" / "python"
NONE = "-"  # a cell with no figure: not measured, or not applicable


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

    def __init__(self, label: str, python: Path, module: str, threads: int, dev: Path) -> None:
        if not python.exists():
            sys.exit(f"{python} is missing: run `make bench-router` (it creates the venvs)")
        self.label = label
        self.proc = subprocess.Popen(
            [str(python), "-m", module, "--threads", str(threads), "--dev", str(dev), "--serve-timing"],
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


def run_both(threads: int, dev: Path) -> None:
    """Prepare each side in turn (untimed work never overlaps), then time them in turns."""
    sides: list[Side] = []
    try:
        uptime("start")
        ours = Side("expertgate", MAIN_PY, "bench.router_bench", threads, dev)
        sides.append(ours)
        our_systems, steps = ours.ready()
        uptime("expertgate ready")
        peer = Side("semantic-router", PEER_PY, "bench.router_peer", threads, dev)
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


@dataclass(frozen=True)
class Row:
    """One system of the table: its label, its result per set and, if timed, its timings."""

    label: str
    sets: dict[str, Any]
    latency: dict[str, Any] | None = None
    throughput: dict[str, Any] | None = None


def rows(ours: dict[str, Any], peer: dict[str, Any]) -> list[Row]:
    """Our gates and the baselines (router.json), then the peer's variants (router_peer.json)."""
    systems = [ours["systems"][name] for name in ours["order"]]
    out = [Row(s["label"], s["sets"], s.get("latency_ms"), s.get("throughput_rps")) for s in systems]
    names = {"general_route": "general as a route", "threshold_only": "no general route, threshold"}
    for key, v in peer["variants"].items():
        out.append(Row(f"{peer['system']}: {names.get(key, key)}", v["sets"], v["latency_ms"], v["throughput_rps"]))
    return out


def markdown(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(cells) + " |" for cells in body)])


def _f(value: float | None, digits: int = 3) -> str:
    return NONE if value is None else f"{value:.{digits}f}"


def _group(result: dict[str, Any] | None) -> list[str]:
    """Recall per expert (general: the out-of-domain recall) and ECE of one set."""
    if result is None:
        return ["n/a"] * (len(EXPERTS) + 1)
    return [_f(result["recall"][x]) for x in EXPERTS] + [_f(result["ece"])]


def quality_table(table_rows: Sequence[Row]) -> str:
    """Quality on the held-out split, the public dev set and the follow-ups; p50/p99 if timed."""
    head = ["system"]
    for group in ("held-out", "dev", "follow-ups"):
        head += [f"{group} macro-F1" + (" (context / text)" if group == "follow-ups" else "")]
        head += [f"{group} R {x}" for x in EXPERTS] + [f"{group} ECE"]
    head += ["p50 ms", "p99 ms"]
    body = []
    for row in table_rows:
        test, dev = row.sets[TEST], row.sets.get(DEV)
        text, context = row.sets[FOLLOW_UPS], row.sets.get(FOLLOW_UPS_CONTEXT)
        follow = f"{_f(context['macro_f1'] if context else None)} / {_f(text['macro_f1'])}"
        cells = [row.label, _f(test["macro_f1"]), *_group(test), _f(dev["macro_f1"]) if dev else "n/a", *_group(dev)]
        cells += [follow, *_group(context or text)]
        cells += [_f(row.latency["p50"], 1), _f(row.latency["p99"], 1)] if row.latency else [NONE, NONE]
        body.append(cells)
    return markdown(head, body)


def source_table(table_rows: Sequence[Row], sources: dict[str, Any]) -> str:
    """Accuracy per source of the public dev set, sources grouped by their label."""
    order = sorted(sources, key=lambda s: (EXPERTS.index(sources[s]["domain"]), s))
    head = ["system", "dev accuracy", *(f"{s} ({sources[s]['domain']}, {sources[s]['n']})" for s in order)]
    body = []
    for row in table_rows:
        dev = row.sets[DEV]
        body.append([row.label, _f(dev["accuracy"]), *(_f(dev["per_source"][s]["accuracy"]) for s in order)])
    return markdown(head, body)


def latency_table(table_rows: Sequence[Row]) -> str:
    """The timed systems' latency and throughput (bench.router_common.TimingPlan)."""
    head = (
        "system",
        "p50 ms",
        "p99 ms",
        "short p50/p99 ms",
        "embedding alone p50 ms",
        "overhead p50 ms",
        "CPU ms/request p50",
        "batch req/s",
        "batch CPU ms/request",
    )
    body = []
    for row in table_rows:
        lat, rps = row.latency, row.throughput
        if lat is None or rps is None:
            continue
        body.append(
            [
                row.label,
                _f(lat["p50"], 1),
                _f(lat["p99"], 1),
                f"{_f(lat['short']['p50'], 1)} / {_f(lat['short']['p99'], 1)}",
                _f(lat["encoder_only"]["p50"], 1),
                _f(lat["overhead"]["p50"], 2),
                _f(lat["cpu_ms"]["p50"], 1),
                _f(rps["median"], 0),
                _f(rps["cpu_ms_per_request"], 1),
            ]
        )
    return markdown(head, body)


def tables(ours: dict[str, Any], peer: dict[str, Any]) -> str:
    """The comparison as markdown: what was measured, then quality, dev per source, latency."""
    data = ours["data"]
    if data != peer["data"]:
        raise SystemExit(f"router.json and router_peer.json were measured on different data: {data} != {peer['data']}")
    table_rows = rows(ours, peer)
    split, dev = data["split"], data[DEV]
    lines = [
        f"Trained on the shipped training set: {split['fit']} fit rows, {split['val']} validation rows "
        f"(all tuning). Held-out test split: {split[TEST]}. Follow-ups: {data[FOLLOW_UPS]}. "
        + (
            f"Public dev set: {dev['n']} rows from {len(dev['sources'])} sources (sha256 {dev['sha256'][:12]})."
            if "skipped" not in dev
            else f"**Public dev set skipped: {dev['path']} was not found.**"
        ),
        "",
        f"Threads: ours {ours['torch_threads']}, peer {peer['torch_threads']}; load average at the end: "
        f"ours {ours['machine']['loadavg']}, peer {peer['machine']['loadavg']} on {ours['machine']['cpus']} CPUs.",
        *(f"Note: {note}." for note in ours["notes"]),
        "",
        "Quality. R: recall (general: the out-of-domain recall). ECE: top-1 confidence, 15 bins. "
        f"Follow-ups: macro-F1 with the conversation / on the text alone ({NONE}: the system keeps no "
        "conversation state); recall and ECE with the conversation where the system uses it.",
        "",
        quality_table(table_rows),
    ]
    if "skipped" not in dev:
        lines += [
            "",
            "Public dev set: accuracy per source (source, its label, rows).",
            "",
            source_table(table_rows, dev["sources"]),
        ]
    lines += ["", "Latency and throughput of the timed systems.", "", latency_table(table_rows)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP/BLAS threads per side (0: defaults)")
    parser.add_argument("--skip-run", action="store_true", help="only print the tables from the last results")
    parser.add_argument("--out-md", type=Path, default=RESULTS / "router_table.md", help="also write the tables here")
    dev_args(parser)
    args = parser.parse_args()
    if not args.skip_run:
        run_both(args.threads, args.dev)
    ours = json.loads((RESULTS / "router.json").read_text())
    peer = json.loads((RESULTS / "router_peer.json").read_text())
    text = tables(ours, peer)
    print()
    print(text)
    args.out_md.parent.mkdir(parents=True, exist_ok=True)
    args.out_md.write_text(text + "\n")
    print(f"\nwrote {args.out_md}")


if __name__ == "__main__":
    main()
