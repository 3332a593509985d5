"""The `expertgate` child processes of integration tests: a real Celery worker, and
how any such process is stopped (SIGTERM, then SIGKILL if it hangs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

EXPERTGATE = Path(sys.executable).with_name("expertgate")


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> None:
    """Send ``sig`` and wait up to 20 s for ``proc`` to exit; kill it if it does not."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def celery_worker(env: Mapping[str, str], log: Path, name: str, *, unset: Iterable[str] = ()) -> Iterator[Path]:
    """Run `expertgate worker` (solo pool) with ``os.environ`` plus ``env``, less the
    variables named in ``unset``, its output in ``log``; yields ``log`` and stops the
    worker on exit. ``name`` prefixes a unique Celery hostname, so workers of concurrent
    test runs never answer each other's pings."""
    environ = {**os.environ, **env}
    for variable in unset:
        environ.pop(variable, None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(EXPERTGATE), "worker", "--pool", "solo", "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h"],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        stop_process(proc)
