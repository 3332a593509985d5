"""Issue 25's figures on a real `expertgate serve` (embedded default: SQLite, no Redis).

``hang``: every expert's endpoint accepts connections and never answers (a TCP server
that reads and stays silent), with the shipped timeouts and retries and a short request
deadline. 32 requests, 8 at a time, half streamed: how long each takes to be answered or
refused, against the target p99 <= deadline + 0.5 s.

``streams``: the bundled SmolLM2 on llama.cpp, 8 users streaming at once for a few rounds
(the web UI's case that left 9 of 19 answers empty). Counts answers that came back empty
or were cut, and audit events recorded ``ok`` whose answer is empty or not complete:
the target is 0 of those.

    .venv/bin/python -m bench.hardening hang [--deadline 5]
    .venv/bin/python -m bench.hardening streams [--users 8 --rounds 2]

Writes bench/results/hardening_<part>.json. Never fails on a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.load.servers import Server, free_port, spawn, wait_ready

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
QUESTIONS = [
    "How do I reset my Beacon password?",
    "What does the liability cap in our MSA cover?",
    "Why does my Python script raise KeyError?",
    "Write a short thank-you note to a colleague.",
    "Can we use an AGPL library in the product?",
    "How do I squash my last three git commits?",
    "Where do I download last month's invoice?",
    "What is the capital of Portugal?",
]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextlib.contextmanager
def silent_upstream() -> Iterator[int]:
    """A TCP server that accepts every connection, reads, and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "expertgate"), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"expertgate {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout


def start(workdir: Path, env: dict[str, str]) -> tuple[Server, str]:
    """`expertgate serve` on the embedded default in ``workdir``; a user's key."""
    key = cli(env, "keys", "create", "--user", "bench@example.com").strip().splitlines()[-1]
    port = free_port()
    server = spawn("expertgate", [str(BIN / "expertgate"), "serve", "--port", str(port)], port, workdir, env)
    wait_ready(server, "/readyz", 300)
    return server, key


def base_env(workdir: Path) -> dict[str, str]:
    return {
        "EXPERTGATE_DATA_DIR": str(workdir / "data"),
        "EXPERTGATE_LOG_LEVEL": "warning",
        "EXPERTGATE_WORKERS": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


async def one(client: httpx.AsyncClient, key: str, question: str, stream: bool, **extra: Any) -> dict[str, Any]:
    """One chat request; what came back and how long it took (a stream: to its end)."""
    body = {"model": "auto", "stream": stream, "messages": [{"role": "user", "content": question}], **extra}
    headers = {"authorization": f"Bearer {key}"}
    started = time.perf_counter()
    if not stream:
        r = await client.post("/v1/chat/completions", json=body, headers=headers)
        took = time.perf_counter() - started
        data = r.json()
        text = data["choices"][0]["message"]["content"] if r.status_code == 200 else ""
        code = None if r.status_code == 200 else data["error"]["code"]
        finish = data["choices"][0]["finish_reason"] if r.status_code == 200 else None
        return {"status": r.status_code, "s": took, "text": text, "error": code, "finish": finish, "stream": False}
    text, code, finish, status = "", None, None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
        status = r.status_code
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                code = event["error"]["code"]
            elif event.get("choices"):
                text += event["choices"][0]["delta"].get("content") or ""
                finish = event["choices"][0].get("finish_reason") or finish
        if status != 200:
            code = json.loads(await r.aread() or b"{}").get("error", {}).get("code")
    return {"status": status, "s": time.perf_counter() - started, "text": text, "error": code, "finish": finish,
            "stream": True}  # fmt: skip


async def fire(port: int, key: str, jobs: list[tuple[str, bool]], concurrency: int, **extra: Any) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=900) as client:

        async def run(question: str, stream: bool) -> dict[str, Any]:
            async with gate:
                return await one(client, key, question, stream, **extra)

        return await asyncio.gather(*(run(q, s) for q, s in jobs))


def hang(deadline: float, requests: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, silent_upstream() as port:
        workdir = Path(tmp)
        spec = yaml.safe_load((ROOT / "experts" / "experts.yaml").read_text())
        spec["defaults"]["llm"] = {"model": "openai/silent", "api_base": f"http://127.0.0.1:{port}/v1"}
        for expert in spec["experts"].values():
            expert.pop("llm", None)
            expert["capacity"] = 64  # the upstream's silence is measured, not a queue
        (workdir / "experts.yaml").write_text(yaml.safe_dump(spec))
        env = {
            **base_env(workdir),
            "EXPERTGATE_EXPERTS_FILE": str(workdir / "experts.yaml"),
            "EXPERTGATE_REQUEST_DEADLINE_S": str(deadline),
            "OPENAI_API_KEY": "sk-silent",
        }
        server, key = start(workdir, env)
        try:
            jobs = [(QUESTIONS[i % len(QUESTIONS)], i % 2 == 1) for i in range(requests)]
            results = asyncio.run(fire(server.port, key, jobs, concurrency))
        finally:
            server.stop()
    took = [r["s"] for r in results]
    return {
        "deadline_s": deadline,
        "shipped_experts_settings": {"timeout_s": 120, "retries": 2, "first_token_timeout_s": 60},
        "requests": requests,
        "concurrency": concurrency,
        "outcomes": dict(Counter(f"{r['status']} {r['error']}" for r in results)),
        "seconds": {"p50": round(pct(took, 50), 3), "p99": round(pct(took, 99), 3), "max": round(max(took), 3)},
        "target_p99_s": deadline + 0.5,
        "met": pct(took, 99) <= deadline + 0.5,
    }


def audit_rows(db_file: Path) -> list[tuple[str, str, str | None, str]]:
    """(outcome, completeness, answer, request_id) of every chat event."""
    with contextlib.closing(sqlite3.connect(db_file)) as db:
        rows = db.execute(
            "SELECT outcome, payload, answer, request_id FROM audit_events WHERE action = 'chat.completion'"
        ).fetchall()
    return [(o, json.loads(p).get("completeness", "?"), a, r) for o, p, a, r in rows]


def streams(users: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = base_env(workdir)
        server, key = start(workdir, env)
        try:
            results: list[dict[str, Any]] = []
            for _ in range(rounds):
                jobs = [(QUESTIONS[i % len(QUESTIONS)], True) for i in range(users)]
                results += asyncio.run(fire(server.port, key, jobs, users))
            time.sleep(2)  # the chainer chains the last events
        finally:
            server.stop()
        events = audit_rows(workdir / "data" / "expertgate.db")
    took = [r["s"] for r in results]
    answered = [r for r in results if r["error"] is None and r["status"] == 200]
    ok_events = [e for e in events if e[0] == "ok"]
    return {
        "model": "SmolLM2-135M-Instruct (bundled, llama.cpp, 2 threads)",
        "users": users,
        "rounds": rounds,
        "answers": len(results),
        "outcomes": dict(Counter(r["error"] or f"{r['status']} {r['finish']}" for r in results)),
        "empty_answers_shown_as_finished": sum(1 for r in answered if not r["text"].strip()),
        "cut_at_token_cap": sum(1 for r in answered if r["finish"] == "length"),
        "audit_events": len(events),
        "audit_ok_but_empty_or_incomplete": sum(
            1 for o, c, a, _ in ok_events if not (a or "").strip() or c not in ("complete", "cut_by_token_cap")
        ),
        "audit_by_outcome": dict(Counter(f"{o}/{c}" for o, c, _, _ in events)),
        "seconds_to_end_of_stream": {"p50": round(statistics.median(took), 2), "max": round(max(took), 2)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    h = sub.add_parser("hang")
    h.add_argument("--deadline", type=float, default=5.0)
    h.add_argument("--requests", type=int, default=32)
    h.add_argument("--concurrency", type=int, default=8)
    s = sub.add_parser("streams")
    s.add_argument("--users", type=int, default=8)
    s.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.part == "hang":
        result = hang(args.deadline, args.requests, args.concurrency)
    else:
        result = streams(args.users, args.rounds)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"hardening_{args.part}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
