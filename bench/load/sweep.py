"""expertgate alone at a few open-loop rates: the quick loop for one hot-path change.

    .venv/bin/python -m bench.load.sweep [--rates 50,100,125] [--kinds full,pass] [--seconds 10]

Starts the C stub and expertgate (2 workers on PostgreSQL + Redis) as bench/load/run.py
does, then for each kind of request (``pass``: expert named; ``full``: routing and
retrieval) runs a short warm-up, each rate in open loop, and one closed-loop run at 32
connections, printing p50/p99 and the server's CPU per request. No LiteLLM and no
interleaving: figures from here compare two versions of expertgate measured the same
hour, never expertgate with LiteLLM (that is `make bench`). Writes nothing.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.load.run import Bench, Target, write_bodies
from bench.load.servers import expertgate_alone


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,100,125", help="open-loop requests/s, comma-separated")
    parser.add_argument("--kinds", default="full", help="pass, full or both (comma-separated)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each open-loop run")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r]
    kinds = [k for k in args.kinds.split(",") if k]
    with tempfile.TemporaryDirectory(prefix="eg-sweep-") as tmp, expertgate_alone(Path(tmp)) as alone:
        bodies = write_bodies(Path(tmp))
        bench = Bench(alone.loadgen, alone.stub)
        bench.measure_idle(alone.expertgate)
        for kind in kinds:
            target = Target(f"eg-{kind}", alone.expertgate, bodies[kind], [f"Authorization: Bearer {alone.key}"])
            bench.measure(target, 20, 2, 16)  # warm-up
            for rate in rates:
                bench.measure(target, rate, args.seconds, 64)
            bench.measure(target, 0, 5, 32)


if __name__ == "__main__":
    main()
