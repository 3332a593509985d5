"""The load benchmark's tools: the C stub and load generator, and the figures' arithmetic.

The stub and load generator are built with gcc and run against each other on loopback:
the counts they report must add up (every request due in an open-loop run is sent, JSON
and SSE answers are both parsed to the end, refusals are counted as errors).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.load import report
from bench.load.floor import WHAT_IF_MARK, WHATIF, budget_2x, check_what_if, machine_figures, start_floor
from bench.load.profile import summarize as summarize_profile
from bench.load.servers import (
    Server,
    build_tools,
    configure_stub,
    post_json,
    services_cpu_seconds,
    start_stub,
    wait_ready,
)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the load tools are built with gcc")


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, Path]]:
    workdir = tmp_path_factory.mktemp("load")
    stub_exe, loadgen = build_tools(workdir)
    stub = start_stub(stub_exe, workdir, tokens=5)
    yield stub, loadgen, workdir
    stub.stop()


def _load(loadgen: Path, port: int, body: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(loadgen), "-p", str(port), "-b", str(body), *args], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _body(workdir: Path, name: str, payload: dict[str, Any]) -> Path:
    path = workdir / name
    path.write_text(json.dumps(payload))
    return path


def test_open_loop_sends_every_due_request_and_reads_json(tools: tuple[Server, Path, Path]) -> None:
    stub, loadgen, workdir = tools
    body = _body(workdir, "json.json", {"model": "stub-model", "messages": [{"role": "user", "content": "hi"}]})
    result = _load(loadgen, stub.port, body, "-r", "200", "-d", "1", "-c", "8", "-e", "tok4")
    assert result["sent"] == 200
    assert result["ok"] == 200
    assert sum(result["errors"].values()) == 0


def _read_request(conn: socket.socket) -> bytes | None:
    """One HTTP request (head and Content-Length body) from ``conn``; None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head


def test_a_request_due_before_the_end_is_sent_when_the_tool_wakes_after_it(
    tools: tuple[Server, Path, Path],
) -> None:
    """`-r 1 -d 2`: request 0 is due at the start, request 1 at 1 s, the run ends at 2 s.
    The tool is stopped (SIGSTOP) as soon as request 0 arrives and resumed after its end:
    it wakes with request 1 overdue and must still send it (a loaded machine once lost
    the last request of a run this way). The pause is ordered by the tool's own request,
    not by timing; only a stop later than 1 s after the start could let request 1 out
    before the pause, which makes the test pass for the wrong reason, never fail."""
    _, loadgen, workdir = tools
    body = _body(workdir, "late.json", {"model": "stub-model"})
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(30)
        port = server.getsockname()[1]
        tool = subprocess.Popen(
            [str(loadgen), "-p", str(port), "-b", str(body), "-r", "1", "-d", "2", "-c", "1"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(30)
                assert _read_request(conn) is not None  # request 0: the run has started
                tool.send_signal(signal.SIGSTOP)
                time.sleep(2.2)  # the run's end (2 s after a start before request 0) passes
                tool.send_signal(signal.SIGCONT)
                conn.sendall(answer)
                served = 1
                while _read_request(conn) is not None:  # until the tool exits and closes
                    conn.sendall(answer)
                    served += 1
            out, _ = tool.communicate(timeout=30)
        finally:
            if tool.poll() is None:
                tool.kill()
                tool.wait()
    result = json.loads(out)
    assert served == 2
    assert result["sent"] == 2 and result["ok"] == 2


def test_sse_stream_is_read_to_its_end(tools: tuple[Server, Path, Path]) -> None:
    stub, loadgen, workdir = tools
    body = _body(
        workdir, "sse.json", {"model": "stub-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    result = _load(loadgen, stub.port, body, "-r", "0", "-d", "0.5", "-c", "4", "-e", "[DONE]")
    assert result["ok"] > 0
    assert result["ok"] == result["sent"]


def test_refusals_and_wrong_bodies_count_as_errors(tools: tuple[Server, Path, Path]) -> None:
    stub, loadgen, workdir = tools
    body = _body(workdir, "any.json", {"model": "stub-model"})
    missing = _load(loadgen, stub.port, body, "-P", "/nowhere", "-r", "50", "-d", "0.2", "-c", "2")
    assert missing["ok"] == 0
    assert missing["errors"]["status_4xx"] == missing["sent"] == 10
    wrong = _load(loadgen, stub.port, body, "-r", "50", "-d", "0.2", "-c", "2", "-e", "not in the answer")
    assert wrong["errors"]["bad_body"] == wrong["sent"] == 10


def test_stub_queues_beyond_its_slots(tools: tuple[Server, Path, Path]) -> None:
    """With one slot, four concurrent requests are answered one after another."""
    stub, loadgen, workdir = tools
    body = _body(workdir, "slots.json", {"model": "stub-model"})
    configure_stub(stub, delay_ms=40, cap=1)
    try:
        result = _load(loadgen, stub.port, body, "-r", "0", "-d", "0.5", "-c", "4")
    finally:
        configure_stub(stub, delay_ms=0, cap=0)
    assert result["ok"] > 0
    # Served one at a time, the fourth in line waits for the three ahead of it.
    assert result["latency_ms"]["p50"] >= 3 * 40


def _run(target: str, rnd: int, p50: float, p99: float, **extra: Any) -> dict[str, Any]:
    return {
        "target": target,
        "round": rnd,
        "rate": extra.pop("rate", 25),
        "rps": extra.pop("rps", 25.0),
        "sent": 10,
        "ok": 10,
        "cpu_ms_per_request": extra.pop("cpu", 1.0),
        "errors": {"status_4xx": 0, "status_5xx": extra.pop("err5", 0)},
        "latency_ms": {"p50": p50, "p99": p99},
        **extra,
    }


def test_overhead_is_taken_per_round_at_the_same_percentile() -> None:
    phases = {
        "overhead": [
            _run("direct", 0, 1.0, 2.0),
            _run("gw", 0, 3.0, 10.0),
            _run("direct", 1, 5.0, 9.0),
            _run("gw", 1, 6.0, 12.0),
            _run("direct", 2, 1.0, 2.0),
            _run("gw", 2, 2.5, 6.0),
        ],
        "ladder": [_run("gw", 0, 1, 1, rate=25, passed=True), _run("gw", 0, 1, 90, rate=50, passed=False)],
        "closed": [_run("gw", 0, 1, 1, rps=100.0, cpu=4.0), _run("gw", 1, 1, 1, rps=120.0, cpu=6.0)],
        "saturation": [_run("direct", 0, 1, 1, rps=160.0), _run("gw", 0, 1, 1, rps=152.0, err5=2)],
    }
    summary = report.summarize(phases, ["direct", "gw"], {"gw": {"rss_mib": 50.0, "processes": 1}}, 40)
    assert summary["direct"]["max_sustained_rps"] is None  # not on the ladder: not measured, not 0
    row = summary["gw"]
    assert row["overhead_p50_ms"] == 1.5  # median of 2.0, 1.0, 1.5
    assert row["overhead_p99_ms"] == 4.0  # median of 8.0, 3.0, 4.0
    assert row["max_sustained_rps"] == 25
    assert row["closed32_rps"] == 110.0
    assert row["cpu_s_per_1000"] == 5.0
    assert row["saturation_vs_direct"] == 0.95
    assert row["errors"] == 2


def test_profile_groups_samples_by_frame_project_and_package(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    site = "/venv/lib/python3.11/site-packages"
    raw = tmp_path / "raw.txt"
    raw.write_text(
        f"run (asyncio/runners.py:1);route ({root}/router/service.py:96);encode ({site}/torch/nn/linear.py:5) 3\n"
        f"run (asyncio/runners.py:1);record ({root}/backend/audit/writer.py:10) 1\n"
    )
    out = summarize_profile(raw)
    assert out["samples"] == 4
    assert dict(out["project_inclusive_pct"]) == {
        "route (router/service.py)": 75.0,
        "record (backend/audit/writer.py)": 25.0,
    }
    assert dict(out["packages_inclusive_pct"]) == {"torch": 75.0}
    assert out["self_pct"][0] == ("encode (torch/nn/linear.py)", 75.0)


def test_stream_overhead_is_taken_against_the_streamed_direct_run() -> None:
    runs = [
        {"mode": "open", **_run("eg-stream", -1, 50.0, 90.0, err5=1)},
        {"mode": "open", **_run("direct-stream", 0, 1.0, 2.0)},
        {"mode": "open", **_run("eg-stream", 0, 4.0, 9.0)},
        {"mode": "open", **_run("direct-stream", 1, 2.0, 3.0)},
        {"mode": "open", **_run("eg-stream", 1, 4.0, 8.0)},
        {"mode": "closed", **_run("eg-stream", 0, 80.0, 120.0, rps=300.0, cpu=3.0)},
        {"mode": "closed", **_run("eg-stream", 1, 80.0, 120.0, rps=340.0, cpu=4.0)},
    ]
    row = report.summarize_stream(runs, ["direct-stream", "eg-stream"])["eg-stream"]
    assert row["overhead_p50_ms"] == 2.5  # median of 3.0 and 2.0; the warm-up is not a round
    assert row["overhead_p99_ms"] == 6.0  # median of 7.0 and 5.0
    assert row["p50_ms"] == 4.0
    assert row["closed32_rps"] == 320.0
    assert row["cpu_s_per_1000"] == 3.5
    assert row["errors"] == 1  # the warm-up's error counts
    assert row["requests"] == 50
    goals = report.goals(
        {"eg-pass": {"errors": 0}, "eg-full": {"errors": 0}},
        {"lost": 0, "verify": "exit 0"},
        {"eg-pass-stream": {"errors": 2}},
    )
    assert next(g for g in goals if g["goal"] == "zero errors (expertgate)") == {
        "goal": "zero errors (expertgate)",
        "measured": 2,
        "met": False,
    }


def test_the_plot_has_the_streamed_panels_when_the_run_streamed(tmp_path: Path) -> None:
    row = {
        "overhead_p50_ms": 2.0, "overhead_p99_ms": 5.0, "closed32_rps": 300.0, "max_sustained_rps": 100,
        "cpu_s_per_1000": 3.0, "rss_mib": 100.0,
    }  # fmt: skip
    stream = {"overhead_p50_ms": 9.0, "overhead_p99_ms": 20.0, "closed32_rps": 150.0, "cpu_s_per_1000": 10.0}
    results: dict[str, Any] = {"summary": {"direct": row, "gw": row}, "conditions": {}}
    report.write_svg(results, tmp_path / "plain.svg")
    results["stream_summary"] = {"direct-stream": stream, "gw-stream": stream}
    report.write_svg(results, tmp_path / "streamed.svg")
    plain, streamed = (tmp_path / "plain.svg").read_text(), (tmp_path / "streamed.svg").read_text()
    assert "Streamed" not in plain and "gw-stream" not in plain
    for title in ("Streamed: overhead", "Streamed: throughput", "Streamed: server CPU"):
        assert title in streamed
    assert "150.0 /s" in streamed and ">direct-stream<" not in streamed  # the baseline is not plotted


def _stub_text(stub: Server, body: dict[str, Any]) -> str:
    answer = post_json(stub.port, "/v1/chat/completions", body)
    assert isinstance(answer, dict)
    return str(answer["choices"][0]["message"]["content"])


def test_floor_gateways_answer_with_the_stubs_completion(tools: tuple[Server, Path, Path]) -> None:
    """Both bare gateways of bench/load/floor.py pass the stub's answer through whole:
    the floor they measure is that of a working gateway."""
    stub, _, workdir = tools
    body = {"model": "stub-model", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    expected = _stub_text(stub, body)
    assert "tok4" in expected
    for mode in ("httpx", "litellm"):
        server = start_floor(workdir, mode, stub, workers=1)
        try:
            wait_ready(server, "/health", 300)
            answer = post_json(server.port, "/v1/chat/completions", body)
        finally:
            server.stop()
        assert isinstance(answer, dict)
        assert answer["choices"][0]["message"]["content"] == expected, mode


_WHAT_IF_CALL = """
import asyncio, json, sys
import litellm

async def refuse(**kwargs):
    raise AssertionError("litellm was called")

litellm.acompletion = refuse
from experts.llm import LiteLLMClient
from experts.registry import GenerationParams
from experts.types import ChatMessage, Endpoint

endpoint = Endpoint(model="hosted_vllm/stub-model", api_base=sys.argv[1], api_key="sk-stub", timeout_s=10)
done = asyncio.run(LiteLLMClient().complete("general", endpoint, [ChatMessage("user", "hi")], GenerationParams(max_tokens=8)))
print(json.dumps({"text": done.text, "completion_tokens": done.usage.completion_tokens}))
"""


def test_what_if_server_calls_the_endpoint_without_litellm(tools: tuple[Server, Path, Path]) -> None:
    """eg-direct's what-if (bench/load/whatif) replaces litellm's call for self-hosted
    endpoints and nothing else: here litellm's acompletion raises if it is reached."""
    stub, _, _ = tools
    direct = post_json(
        stub.port, "/v1/chat/completions", {"model": "stub-model", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert isinstance(direct, dict)
    expected = {
        "text": direct["choices"][0]["message"]["content"],
        "completion_tokens": direct["usage"]["completion_tokens"],
    }
    done = subprocess.run(
        [sys.executable, "-c", _WHAT_IF_CALL, f"http://127.0.0.1:{stub.port}/v1"],
        env={**os.environ, "PYTHONPATH": str(WHATIF), "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert WHAT_IF_MARK in done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_a_what_if_server_must_have_it_in_every_process(tmp_path: Path) -> None:
    log = tmp_path / "eg-direct.log"
    server = Server("eg-direct", subprocess.Popen(["true"]), 0, log)
    server.proc.wait()
    log.write_text(f"{WHAT_IF_MARK} ...\n" * 3)
    check_what_if(server, workers=2)  # the supervisor and two workers
    log.write_text(f"{WHAT_IF_MARK} ...\n" * 2)
    with pytest.raises(RuntimeError, match="2 of 3 processes"):
        check_what_if(server, workers=2)
    log.write_text(f"{WHAT_IF_MARK} ...\n" * 3 + "Error in sitecustomize; set PYTHONVERBOSE for traceback:\n")
    with pytest.raises(RuntimeError):
        check_what_if(server, workers=2)


def test_the_2x_budget_is_what_the_machine_leaves_the_gateway() -> None:
    def closed(ok: int, machine: float, services: float, stub: float, loadgen: float, busy: float) -> dict[str, Any]:
        return {
            "ok": ok, "machine_cpu_s": machine, "services_cpu_s": services, "stub_cpu_s": stub,
            "loadgen_cpu_s": loadgen, "machine_busy_cores": busy,
        }  # fmt: skip

    eg = machine_figures([closed(1000, 3.0, 0.5, 0.05, 0.05, 1.9), closed(2000, 7.0, 0.8, 0.1, 0.1, 2.0)])
    # per request: machine 3.0 and 3.5 ms, PG + Redis 0.5 and 0.4, stub + loadgen 0.1 and 0.1
    assert eg == {
        "machine_busy_cores": 1.95,
        "machine_cpu_ms_per_request": 3.25,
        "services_cpu_ms_per_request": 0.45,
        "tools_cpu_ms_per_request": 0.1,
    }
    summary = {
        "litellm-bare": {"closed32_rps": 390.0},
        "eg-pass": {**eg, "cpu_s_per_1000": 2.7},
        "floor-litellm": {"cpu_s_per_1000": 1.4},
    }
    budget = budget_2x(summary)
    assert budget is not None
    assert budget["rps"] == 780.0
    assert budget["machine_cpu_ms_per_request"] == 2.5  # 1.95 cores / 780 per s
    assert budget["server_cpu_ms_per_request"] == 1.95  # less 0.45 and 0.1
    assert budget_2x({"eg-pass": eg}) is None  # no LiteLLM in the run: no budget


def test_services_cpu_keeps_the_time_of_processes_that_have_ended(tmp_path: Path) -> None:
    """A PostgreSQL backend that ends mid-run still counts (its parent reaped it): here a
    root script runs a busy child, reaps it, and stays; the child's CPU must remain in
    the sum after it has gone."""
    child = tmp_path / "egburn-child"
    child.write_text("#!/bin/bash\ni=0\nwhile [ $i -lt 200000 ]; do i=$((i+1)); done\n")
    root = tmp_path / "egburn-root"
    root.write_text(f"#!/bin/bash\n{child}\ntouch {tmp_path / 'reaped'}\nexec sleep 60\n")
    for script in (child, root):
        script.chmod(0o755)
    names = ("egburn-root", "egburn-child", "sleep")
    before = services_cpu_seconds(names)
    proc = subprocess.Popen([str(root)])
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "reaped").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "reaped").exists()
        assert services_cpu_seconds(names) - before >= 0.1  # the ended child's CPU
    finally:
        proc.kill()
        proc.wait()
