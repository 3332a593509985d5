"""One API replica's audit writing, as a separate OS process (for test_audit_pg.py).

    python -m tests.support.audit_writer_process URL NAME COUNT ACK_FILE [--no-chainer]

Writes COUNT events (0: until killed) from 4 concurrent tasks through a deferred
AuditTrail, the way the API does, while its own AuditChainer runs beside them (unless
``--no-chainer``). After each event's transaction commits, its request id is appended to
ACK_FILE: the events the "client" was answered for, which must never be lost. On a
normal exit the chainer drains, like the lifespan at shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os

from backend.audit.chain import ChainKey
from backend.audit.chainer import AuditChainer
from backend.audit.types import Actor, AuditEntry, Outcome
from backend.audit.writer import AuditTrail
from backend.db.session import Database
from backend.guard.policy import PiiGuard

KEY = ChainKey(b"integration-test-secret-key-0123")
TASKS = 4


async def main(url: str, name: str, count: int, ack_file: str, chainer_on: bool) -> None:
    db = Database(url)
    trail = AuditTrail(KEY, "redacted", PiiGuard(), deferred=True)
    chainer = AuditChainer(db, KEY, trail.enqueued, interval_s=0.2)
    background = asyncio.create_task(chainer.run()) if chainer_on else None
    numbers = itertools.count() if count == 0 else iter(range(count))
    fd = os.open(ack_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def writer() -> None:
        for n in numbers:
            request_id = f"{name}-{n}"
            actor = Actor(channel="api", user_id=n, email=f"{name}@example.com")
            await trail.record(
                db,
                AuditEntry(
                    action="chat.completion", outcome=Outcome.OK, actor=actor, request_id=request_id,
                    status=200, payload={"n": n}, prompt=f"prompt {n}", answer=f"answer {n}",
                ),
            )  # fmt: skip
            os.write(fd, (request_id + "\n").encode())  # acknowledged: committed

    try:
        await asyncio.gather(*(writer() for _ in range(TASKS)))
        if background is not None:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
            await chainer.settle()
    finally:
        os.close(fd)
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("name")
    parser.add_argument("count", type=int)
    parser.add_argument("ack_file")
    parser.add_argument("--no-chainer", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.name, args.count, args.ack_file, not args.no_chainer))
