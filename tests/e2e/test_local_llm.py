"""The bundled model's server process never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

# The parent: start the bundled model's server, say its pid, then wait to be killed.
PARENT = """
import sys, time
from backend.local_llm import LocalLLMServer, bundled_gguf
server = LocalLLMServer(bundled_gguf(), threads=1)
server.start(timeout_s=120)
print(server._proc.pid, server.api_base, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Running: not gone, and not a zombie waiting for a parent that does not reap it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != b"Z"


def test_the_model_server_stops_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert parent.stdout is not None
        pid_text, api_base = parent.stdout.readline().split()
        child = int(pid_text)
        assert alive(child)
        parent.send_signal(signal.SIGKILL)  # no cleanup of its own can run
        parent.wait(timeout=10)
        deadline = time.monotonic() + 30
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(child), f"the model server at {api_base} outlived its parent"
    finally:
        parent.kill()
        if child and alive(child):  # the leak this test is about must not outlive it either
            os.kill(child, signal.SIGKILL)
