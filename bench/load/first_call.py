"""The first LLM call of a fresh process, with and without ``LiteLLMClient.warm()``.

    .venv/bin/python -m bench.load.first_call [--runs 5]

litellm loads modules and tokenizer tables on its first completion, so the first request
a new server process answers waits for them. ``expertgate serve`` calls
``ExpertService.warm()`` at start-up (backend/app.py). For each mode this starts fresh
Python processes that build the client, optionally warm it (timed), then time their
first and second completion against the C stub (bench/load/stub.c), which answers at
once. Prints the medians and writes bench/results/first_call.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load.servers import ROOT, STUB_MODEL, build_tools, start_stub

OUT = ROOT / "bench" / "results" / "first_call.json"
MODES = ("cold", "warmed")


async def _child(mode: str, port: int) -> dict[str, float]:
    """In a fresh process: the seconds taken by warm() (if asked) and the first two calls."""
    from experts.llm import LiteLLMClient
    from experts.registry import GenerationParams
    from experts.types import ChatMessage, Endpoint

    client = LiteLLMClient()
    endpoint = Endpoint(
        model=f"hosted_vllm/{STUB_MODEL}", api_base=f"http://127.0.0.1:{port}/v1", api_key="sk-stub", timeout_s=30
    )
    messages = (ChatMessage("user", "hello there"),)
    out: dict[str, float] = {}
    if mode == "warmed":
        started = time.perf_counter()
        await client.warm()
        out["warm_ms"] = (time.perf_counter() - started) * 1000
    for name in ("first_call_ms", "second_call_ms"):
        started = time.perf_counter()
        await client.complete("general", endpoint, messages, GenerationParams(max_tokens=16))
        out[name] = (time.perf_counter() - started) * 1000
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per mode")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.port))))
        return
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="eg-first-call-") as tmp:
        stub_exe, _ = build_tools(Path(tmp))
        stub = start_stub(stub_exe, Path(tmp), tokens=16)
        try:
            runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
            for _ in range(args.runs):
                for mode in MODES:  # interleaved: the machine's drift hits both alike
                    argv = [sys.executable, "-m", "bench.load.first_call", "--child", mode, "--port", str(stub.port)]
                    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
                    runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
        finally:
            stub.stop()
    for mode, measured in runs.items():
        results[mode] = {
            key: round(statistics.median(r[key] for r in measured), 1) for key in measured[0]
        } | {"runs": len(measured)}
        print(f"{mode:7s} " + "  ".join(f"{k} {v}" for k, v in results[mode].items()))
    OUT.write_text(json.dumps({"median_per_mode": results, "raw": runs}, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
