"""The cost of one LLM call through litellm, next to a plain httpx call, against the stub.

    .venv/bin/python -m bench.load.llm_call [--calls 400] [--concurrency 8]

expertgate reaches every expert through ``experts.llm.LiteLLMClient`` (litellm's
``acompletion``). This measures what that path costs in CPU per call in this process,
against the same request sent with one shared ``httpx.AsyncClient`` and parsed with
``json``: the floor any OpenAI-compatible client pays. Both talk to the C stub
(bench/load/stub.c), which answers at once. Each litellm provider is measured twice in
one process: before and after ``LiteLLMClient.warm`` is told of the endpoint (as the
server's start-up does: litellm then has a zero-price entry for the stub's model and no
longer searches its map for one on every call). Prints CPU-ms per call and writes
bench/results/llm_call.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from bench.load.servers import ROOT, STUB_MODEL, build_tools, start_stub
from experts.llm import LiteLLMClient
from experts.registry import GenerationParams
from experts.types import ChatMessage, Endpoint

OUT = ROOT / "bench" / "results" / "llm_call.json"
MESSAGES = (ChatMessage("system", "You are the general assistant."), ChatMessage("user", "hello there"))
PARAMS = GenerationParams(temperature=0.2, top_p=0.9, max_tokens=64)


async def _measure(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> dict[str, float]:
    for _ in range(20):  # warm-up: imports, connection pools, lazy caches
        await call()
    queue = iter(range(calls))

    async def worker() -> None:
        for _ in queue:
            await call()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_ms_per_call": round(cpu * 1000 / calls, 3), "calls_per_s": round(calls / wall, 1)}


async def run(port: int, calls: int, concurrency: int) -> dict[str, dict[str, float]]:
    base = f"http://127.0.0.1:{port}/v1"
    client = LiteLLMClient()
    out = {}
    # litellm's "openai" provider calls through the OpenAI SDK; "hosted_vllm" (what a vLLM
    # deployment and the load bench use) sends plain HTTP from litellm's own handler.
    for provider in ("openai", "hosted_vllm"):
        endpoint = Endpoint(
            model=f"{provider}/{STUB_MODEL}", api_base=base, api_key="sk-stub", timeout_s=30, connect_timeout_s=5
        )

        async def via_litellm(endpoint: Endpoint = endpoint) -> object:
            return await client.complete("general", endpoint, MESSAGES, PARAMS)

        out[f"litellm {provider}/, model unknown to litellm"] = await _measure(via_litellm, calls, concurrency)
        await client.warm([endpoint])  # what the server does at start: the model gets an entry
        out[f"litellm {provider}/, after warm-up"] = await _measure(via_litellm, calls, concurrency)
    async with httpx.AsyncClient(base_url=base, headers={"authorization": "Bearer sk-stub"}) as http:

        async def via_httpx() -> object:
            r = await http.post(
                "/chat/completions",
                json={
                    "model": STUB_MODEL,
                    "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
                    **PARAMS.model_dump(),
                },
            )
            r.raise_for_status()
            return json.loads(r.content)["choices"][0]["message"]["content"]

        out["httpx"] = await _measure(via_httpx, calls, concurrency)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eg-llm-call-") as tmp:
        stub_exe, _ = build_tools(Path(tmp))
        stub = start_stub(stub_exe, Path(tmp), tokens=16)
        try:
            results = asyncio.run(run(stub.port, args.calls, args.concurrency))
        finally:
            stub.stop()
    results_json = {**results, "calls": args.calls, "concurrency": args.concurrency}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results_json, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name:45s} {r['cpu_ms_per_call']:7.3f} CPU-ms/call  {r['calls_per_s']:8.1f} calls/s")


if __name__ == "__main__":
    main()
