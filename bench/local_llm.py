"""First-token latency and decode speed of the bundled model, through our litellm adapter.

Starts the embedded llama.cpp server exactly as `expertgate serve` does, streams N
answers through experts.llm.LiteLLMClient, and also once straight over HTTP (httpx, no
litellm) as the baseline for the adapter's own overhead. Prints a table; writes
bench/results/local_llm.json. Never fails on a timing.

    .venv/bin/python -m bench.local_llm [--runs 10] [--max-tokens 128] [--threads 1 2] [--busy 0 1]

``--threads``: the llama.cpp thread counts to measure (``EXPERTGATE_LOCAL_LLM_THREADS``).
``--busy``: how many other processes keep a core busy during the measurement (0: a quiet
machine; 1: what the server's own encoder passes, a second user or any other program
do to a 2-core laptop). Each combination is measured with a fresh server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import time
from pathlib import Path

import httpx

from backend.local_llm import LOCAL_MODEL_ALIAS, LocalLLMServer, bundled_gguf
from experts.llm import LiteLLMClient
from experts.registry import GenerationParams
from experts.types import ChatMessage, Endpoint, StreamDone, TextDelta

PROMPTS = [
    "Explain what a mutex is in two sentences.",
    "What is a non-disclosure agreement?",
    "How do I reset a forgotten password?",
    "Write a short note thanking a colleague.",
    "What does HTTP status 503 mean?",
]
OUT = Path(__file__).resolve().parent / "results" / "local_llm.json"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def via_adapter(endpoint: Endpoint, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    client = LiteLLMClient()
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens)
    start = time.perf_counter()
    first = None
    tokens = 0
    async for event in client.stream("bench", endpoint, [ChatMessage("user", prompt)], params):
        if isinstance(event, TextDelta) and first is None:
            first = time.perf_counter()
        if isinstance(event, StreamDone):
            tokens = event.usage.completion_tokens
    end = time.perf_counter()
    assert first is not None
    return first - start, end - first, tokens


async def via_http(api_base: str, prompt: str, max_tokens: int) -> float:
    body = {
        "model": LOCAL_MODEL_ALIAS,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
    }
    async with httpx.AsyncClient(timeout=120) as http:
        start = time.perf_counter()
        async with http.stream("POST", f"{api_base}/chat/completions", json=body) as resp:
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line.removeprefix("data: ")).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    return time.perf_counter() - start
    raise RuntimeError("no content received")


def _spin(stop_at: float) -> None:
    """Keep one core busy until ``stop_at`` (time.time()), in a process of its own."""
    while time.time() < stop_at:
        pass


async def run(runs: int, max_tokens: int, threads: int = 2) -> dict[str, object]:
    server = LocalLLMServer(bundled_gguf(), threads=threads)
    started = time.perf_counter()
    server.start(timeout_s=120)
    startup_s = time.perf_counter() - started
    try:
        endpoint = Endpoint(
            model=f"openai/{LOCAL_MODEL_ALIAS}",
            api_base=server.api_base,
            api_key="unused",
            timeout_s=120,
        )
        await via_adapter(endpoint, "warm up", 8)
        ttft, decode_tps, http_ttft = [], [], []
        for i in range(runs):
            prompt = PROMPTS[i % len(PROMPTS)]
            # llama.cpp reuses the KV cache of a repeated prompt prefix: a distinct opening
            # per call keeps every measurement a cold prompt evaluation, and alternating
            # the order keeps the two paths on equal terms.
            a, b = f"Question {2 * i}: {prompt}", f"Question {2 * i + 1}: {prompt}"
            if i % 2 == 0:
                http_ttft.append(await via_http(server.api_base, a, max_tokens))
                first, rest, tokens = await via_adapter(endpoint, b, max_tokens)
            else:
                first, rest, tokens = await via_adapter(endpoint, a, max_tokens)
                http_ttft.append(await via_http(server.api_base, b, max_tokens))
            ttft.append(first * 1000)
            if tokens > 1 and rest > 0:
                decode_tps.append((tokens - 1) / rest)
        http_ms = [t * 1000 for t in http_ttft]
        return {
            "model": bundled_gguf().name,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "threads": threads,
            "runs": runs,
            "max_tokens": max_tokens,
            "server_startup_s": round(startup_s, 2),
            "first_token_ms": {
                "p50": round(statistics.median(ttft), 1),
                "p99": round(pct(ttft, 99), 1),
            },
            "first_token_ms_direct_http": {
                "p50": round(statistics.median(http_ms), 1),
                "p99": round(pct(http_ms, 99), 1),
            },
            "adapter_overhead_ms_p50": round(statistics.median(ttft) - statistics.median(http_ms), 1),
            "decode_tokens_per_s": {
                "p50": round(statistics.median(decode_tps), 1),
                "min": round(min(decode_tps), 1),
            },
        }
    finally:
        server.stop()


def measure(runs: int, max_tokens: int, threads: int, busy: int) -> dict[str, object]:
    """One server at ``threads``, with ``busy`` spinning processes beside it."""
    stop_at = time.time() + 3600
    spinners = [multiprocessing.Process(target=_spin, args=(stop_at,), daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    try:
        return {**asyncio.run(run(runs, max_tokens, threads)), "busy_processes": busy}
    finally:
        for p in spinners:
            p.terminate()
            p.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    results = [measure(args.runs, args.max_tokens, t, b) for b in args.busy for t in args.threads]
    result = {"cpu_count": os.cpu_count(), "runs": results}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
