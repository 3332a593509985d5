"""Anchors: the chain head, signed with the audit key, kept outside the database.

The chain alone proves that the rows agree with each other. Someone who can write the
database and knows the key could still rebuild the whole chain, and anyone who can
write the database can delete its newest events *and* move the head back. An anchor
records where the chain stood (``seq``, ``hash``, when, under which key) in an
append-only file the database's writers cannot reach, signed (HMAC-SHA256 with the
audit key) so that a line slipped into the file is not believed either.

``expertgate audit verify`` checks the recent anchors against the database
(:func:`check_anchors`): the event at an anchored seq must still carry the anchored
hash, and the chain must still reach that far. An anchor written by a keyed process
also marks where keying started: no unkeyed event may follow it (verify.py).

Who writes them: the API's chainer on a schedule and at shutdown
(:class:`backend.audit.chainer.AuditChainer` with ``anchors``), and
``expertgate audit anchor``. File format: JSON Lines, one anchor per line::

    {"seq": 42, "hash": "...", "ts": "2026-01-01T00:00:00.000000Z", "alg": "hmac-sha256:...", "sig": "..."}
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.canonical import canonical_json
from backend.audit.chain import ChainKey, format_ts
from backend.db.models import AuditChainHead, AuditEvent, utcnow
from backend.db.session import Database

log = logging.getLogger(__name__)

_ANCHOR_DOMAIN = b"expertgate.audit.anchor.v1\n"
# verify checks this many of the newest anchors (each costs one indexed read).
CHECKED = 16


@dataclass(frozen=True, slots=True)
class Anchor:
    """One signed chain head. ``line`` is its 1-based line in the file (0: not yet written)."""

    seq: int
    hash: str
    ts: str
    alg: str
    sig: str
    line: int = 0

    def signed_bytes(self) -> bytes:
        return canonical_json({"seq": self.seq, "hash": self.hash, "ts": self.ts, "alg": self.alg})

    def signature_ok(self, key: ChainKey) -> bool:
        return self.alg == key.alg and hmac.compare_digest(key.digest(_ANCHOR_DOMAIN, self.signed_bytes()), self.sig)


@dataclass(frozen=True, slots=True)
class AnchorProblem:
    """A line of the anchor file that is not an anchor (``line`` 1-based)."""

    line: int
    problem: str


def sign(key: ChainKey, seq: int, digest: str) -> Anchor:
    unsigned = Anchor(seq=seq, hash=digest, ts=format_ts(utcnow()), alg=key.alg, sig="")
    return Anchor(seq, digest, unsigned.ts, unsigned.alg, key.digest(_ANCHOR_DOMAIN, unsigned.signed_bytes()))


class AnchorLog:
    """The append-only anchor file at ``path`` (created on the first append, 0600)."""

    def __init__(self, path: Path, key: ChainKey) -> None:
        self.path = path
        self._key = key
        self._last: tuple[int, str] | None = None  # what this process appended last

    def append(self, seq: int, digest: str) -> Anchor | None:
        """Sign and append the head (``seq``, ``digest``); None when it is the head this
        process anchored last (an idle server does not grow the file). Raises OSError."""
        if self._last == (seq, digest):
            return None
        anchor = sign(self._key, seq, digest)
        line = json.dumps(
            {"seq": anchor.seq, "hash": anchor.hash, "ts": anchor.ts, "alg": anchor.alg, "sig": anchor.sig},
            separators=(",", ":"),
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: each line lands whole at the end even with several writers.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self._last = (seq, digest)
        return anchor

    async def anchor(self, db: Database) -> Anchor | None:
        """Append the chain head as it is now (see :meth:`append`). Raises OSError, or
        :class:`HeadMissing` when the database has no chain head."""
        async with db.session() as session:
            head = await session.get(AuditChainHead, 1, populate_existing=True)
        if head is None:
            raise HeadMissing()
        return self.append(int(head.seq), str(head.hash))

    def recent(self, count: int = CHECKED) -> tuple[list[Anchor], list[AnchorProblem]]:
        """The newest ``count`` anchors (oldest first) and the lines that did not parse.

        A missing file is no anchors. A last line without its newline (a write cut off
        by a crash) is skipped, not reported.
        """
        if not self.path.exists():
            return [], []
        anchors: deque[Anchor] = deque(maxlen=count)
        problems: list[AnchorProblem] = []
        with self.path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    break
                parsed = _parse(raw, number)
                if isinstance(parsed, Anchor):
                    anchors.append(parsed)
                else:
                    problems.append(parsed)
        return list(anchors), problems


class HeadMissing(Exception):
    """The database has no chain head row (audit_chain_head id 1)."""

    def __init__(self) -> None:
        super().__init__("the audit chain head (audit_chain_head row 1) is missing: deleted, or never migrated")


def _parse(raw: bytes, number: int) -> Anchor | AnchorProblem:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        seq, digest, ts, alg, sig = (data[k] for k in ("seq", "hash", "ts", "alg", "sig"))
        if not (isinstance(seq, int) and all(isinstance(v, str) for v in (digest, ts, alg, sig))):
            raise ValueError("a field has the wrong type")
    except (ValueError, KeyError) as exc:
        return AnchorProblem(number, f"anchor line {number} is not an anchor ({exc})")
    return Anchor(seq, digest, ts, alg, sig, line=number)


async def check_anchors(
    session: AsyncSession, key: ChainKey, anchors: list[Anchor], head_seq: int
) -> tuple[int | None, str, str] | None:
    """(seq, kind, problem) for the first anchor the database contradicts, else None.

    Call after the chain itself verified up to ``head_seq``: then an event at an
    anchored seq that still has the anchored hash vouches for every event before it.
    Anchors written under another key are skipped (they cannot be checked here).
    """
    for anchor in anchors:
        if anchor.alg != key.alg:
            continue
        if not anchor.signature_ok(key):
            return (
                None,
                "anchor_bad_signature",
                (f"anchor line {anchor.line} (seq {anchor.seq}) has a bad signature: the anchor file was edited"),
            )
        if anchor.seq > head_seq:
            return (
                anchor.seq,
                "anchor_ahead",
                (
                    f"the chain ends at seq {head_seq}, but seq {anchor.seq} was anchored at {anchor.ts}: "
                    "events were deleted and the head moved back"
                ),
            )
        if anchor.seq == 0:
            continue
        stored = await session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == anchor.seq))
        if stored != anchor.hash:
            return (
                anchor.seq,
                "anchor_mismatch",
                (
                    f"event {anchor.seq} no longer has the hash anchored at {anchor.ts}: "
                    "the chain was rewritten after it was anchored"
                ),
            )
    return None
