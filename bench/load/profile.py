"""Where expertgate's CPU goes under load: py-spy samples of `expertgate serve`.

    .venv/bin/python -m bench.load.profile [--seconds 15] [--connections 16] [--rate R]
    (or: make bench-load-profile)

Starts the C stub and expertgate as bench/load/run.py does, drives the pass-through and
full-pipeline requests (``--only pass-stream``: streamed pass-through ones) in closed loop
(or open loop at ``--rate`` requests/s), and samples the server with py-spy (from the
LiteLLM bench venv, or PATH) meanwhile. Idle threads are left out, so the shares are of
the CPU the server used. Frames are grouped three ways: the innermost frame (self time),
the project's own functions (inclusive) and third-party packages (inclusive).

Writes bench/results/load_profile.json and prints the top of each list.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load.run import write_bodies
from bench.load.servers import LITELLM_BIN, ROOT, expertgate_alone

OUT = ROOT / "bench" / "results" / "load_profile.json"
PROJECT = ("backend/", "experts/", "router/", "retrieval/")


def _frame(raw: str) -> tuple[str, str]:
    """('function', 'path') from py-spy's 'function (path:line)'."""
    name, _, where = raw.partition(" (")
    return name, where.rsplit(":", 1)[0]


def _short(path: str) -> str:
    """A path relative to site-packages, to the checkout, or to the stdlib."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(str(ROOT) + "/"):
        return path[len(str(ROOT)) + 1 :]
    return path.rsplit("/", 1)[-1]


def summarize(collapsed: Path, top: int = 15) -> dict[str, Any]:
    """Shares of samples per innermost frame, per project function and per package."""
    total = 0
    own: collections.Counter[str] = collections.Counter()
    project: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        name, path = frames[-1]
        own[f"{name} ({_short(path)})"] += n
        seen_fn: set[str] = set()
        seen_pkg: set[str] = set()
        for name, path in frames:
            short = _short(path)
            if short.startswith(PROJECT):
                key = f"{name} ({short})"
                if key not in seen_fn:
                    seen_fn.add(key)
                    project[key] += n
            elif "site-packages/" in path:
                pkg = short.split("/", 1)[0]
                if pkg not in seen_pkg:
                    seen_pkg.add(pkg)
                    packages[pkg] += n

    def share(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in c.most_common(top)] if total else []

    return {
        "samples": total,
        "self_pct": share(own),
        "project_inclusive_pct": share(project),
        "packages_inclusive_pct": share(packages),
    }


def py_spy() -> str:
    found = LITELLM_BIN.parent / "py-spy"
    if found.exists():
        return str(found)
    on_path = shutil.which("py-spy")
    if on_path is None:
        raise SystemExit("py-spy not found: `make bench-load-profile` installs it into bench/.venv-litellm")
    return on_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0, help="open loop at this many requests/s (0: closed loop)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--only", choices=("pass", "full", "pass-stream"), help="profile one kind of request (default: pass and full)"
    )
    parser.add_argument("--raw-dir", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args(argv)
    kinds = (args.only,) if args.only else ("pass", "full")
    spy = py_spy()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="eg-profile-") as tmp, expertgate_alone(Path(tmp)) as alone:
        workdir, eg = Path(tmp), alone.expertgate
        bodies = write_bodies(workdir)

        def drive(body: Path, rate: float, seconds: float, connections: int) -> dict[str, Any]:
            argv = [str(alone.loadgen), "-p", str(eg.port), "-b", str(body), "-r", str(rate)]
            expect = "[DONE]" if body.name.endswith("-stream.json") else "choices"
            argv += ["-c", str(connections), "-d", str(seconds), "-e", expect]
            argv += ["-H", f"Authorization: Bearer {alone.key}"]
            done = subprocess.run(argv, capture_output=True, text=True, check=True)
            return dict(json.loads(done.stdout))

        for profile in kinds:
            # Warm-up outside the samples: what a process does once (connection pools,
            # lazy imports, caches) is not what it does per request.
            drive(bodies[profile], 20, 2, 8)
            raw = (args.raw_dir or workdir) / f"{profile}.txt"
            raw.parent.mkdir(parents=True, exist_ok=True)
            spying = subprocess.Popen(
                [
                    spy,
                    "record",
                    "-p",
                    str(eg.proc.pid),
                    "-d",
                    str(int(args.seconds) + 1),
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                    "--nonblocking",
                    "--subprocesses",  # the uvicorn workers
                    "--full-filenames",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)
            cpu_before = eg.cpu()
            load = drive(bodies[profile], args.rate, args.seconds, args.connections)
            cpu = eg.cpu() - cpu_before
            spying.wait(timeout=60)
            results[profile] = {
                "rps": load["rps"],
                "ok": load["ok"],
                "cpu_ms_per_request": round(cpu * 1000 / load["ok"], 2) if load["ok"] else None,
                **summarize(raw),
            }
    results["conditions"] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": args.seconds,
        "connections": args.connections,
        "rate": args.rate or "closed loop",
        "sampler": "py-spy, 200 Hz",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for profile in kinds:
        r = results[profile]
        print(f"\n== {profile}: {r['rps']:.1f} RPS, {r['cpu_ms_per_request']} CPU-ms/request, {r['samples']} samples")
        for title in ("project_inclusive_pct", "packages_inclusive_pct", "self_pct"):
            print(f"  {title}")
            for name, pct in r[title][:10]:
                print(f"    {pct:5.1f}%  {name}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
