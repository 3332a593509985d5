"""A Starlette app served by uvicorn in a daemon thread on a free loopback port.

The fakes (OpenAI, Slack, OpenID Connect) are real HTTP servers so that the real SDKs
talk to them over a socket; this is the one place that starts and stops such a server,
and that keeps one serving as a process until it is signalled (the ``serve_*`` entry
points the browser e2e run spawns).
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass
class LoopbackServer:
    """A running server; :meth:`stop` shuts it down and joins its thread."""

    port: int
    _server: uvicorn.Server
    _thread: threading.Thread

    @classmethod
    def start(cls, app: ASGIApp, what: str, timeout_s: float = 10) -> LoopbackServer:
        """Serve ``app`` on 127.0.0.1 at a free port; returns once it accepts connections.

        Raises RuntimeError naming ``what`` if it has not started within ``timeout_s``.
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.01)
        return cls(port, server, thread)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


def wait_for_signal() -> None:
    """Block until the process gets SIGTERM or SIGINT (the ``serve_*`` entry points)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
