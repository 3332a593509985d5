"""expertgate one request at a time: what a lone request costs and how long it takes.

    .venv/bin/python -m bench.load.lone [--requests 150] [--rounds 2] [--kinds full,pass]

Starts the C stub and expertgate (2 workers on PostgreSQL + Redis) as bench/load/run.py
does, then per round and kind sends ``--requests`` requests one after the other, 30 ms
apart (nothing batches: the server is idle between them), and prints the server's CPU per
request (its processes' CPU over the run, less what it uses at rest) and the latency seen
by the client (p50 / p90). The open-loop goal of issue 24 (50 requests/s at p99 <= 40 ms)
depends on this cost more than on the closed-loop figures, where requests share encoder
calls. To compare with an earlier checkout, run it again with ``PYTHONPATH=<a git
worktree of it>``, the same hour. Writes nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from bench.load.servers import expertgate_alone

QUESTION = "How do I rotate the API key for the billing service in our deployment?"
MODELS = {"full": "auto", "pass": "general"}
GAP_S = 0.03


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=150, help="requests per round and kind")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kinds", default="full,pass", help="full, pass or both (comma-separated)")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    with tempfile.TemporaryDirectory(prefix="eg-lone-") as tmp, expertgate_alone(Path(tmp)) as alone:
        server = alone.expertgate
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}",
            headers={"Authorization": f"Bearer {alone.key}"},
            timeout=60,
        )
        time.sleep(3)
        before = server.cpu()
        time.sleep(10)
        idle = (server.cpu() - before) / 10  # cores in use at rest
        print(f"at rest: {idle:.3f} cores")
        for round_ in range(1, args.rounds + 1):
            for kind in kinds:
                body = {"model": MODELS[kind], "max_tokens": 64, "messages": [{"role": "user", "content": QUESTION}]}
                for _ in range(5):  # warm-up
                    client.post("/v1/chat/completions", json=body).raise_for_status()
                before, started = server.cpu(), time.perf_counter()
                latencies = []
                for _ in range(args.requests):
                    sent = time.perf_counter()
                    client.post("/v1/chat/completions", json=body).raise_for_status()
                    latencies.append((time.perf_counter() - sent) * 1000)
                    time.sleep(GAP_S)
                cpu_s = server.cpu() - before - idle * (time.perf_counter() - started)
                latencies.sort()
                p50, p90 = latencies[len(latencies) // 2], latencies[int(0.9 * len(latencies))]
                print(
                    f"round {round_} {kind:4s}: {cpu_s * 1000 / args.requests:6.2f} CPU-ms a request, "
                    f"latency p50 {p50:6.2f} ms, p90 {p90:6.2f} ms",
                    flush=True,
                )


if __name__ == "__main__":
    main()
