"""The hash chain, as pure functions over plain values (no SQL, no I/O).

Each event's hash covers its predecessor's hash and every audited field, through the
canonical JSON of :class:`EventBody`::

    hash_n = H("expertgate.audit.event.v1\\n" || canonical(body_n with prev_hash = hash_{n-1}))

The prompt and answer text are *not* hashed directly: the body holds their digest
(:func:`content_digest`). Retention can therefore delete old text and the chain still
verifies, while any edit to text that is still present is caught by recomputing its
digest. ``H`` is HMAC-SHA256 under the configured secret key, or plain SHA-256 when no
key is configured (then anyone with write access can recompute a consistent chain; the
key, or an externally kept copy of the head hash, is what makes rewriting detectable).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime

from backend.audit.canonical import canonical_json
from backend.audit.record import HASHED_FIELDS, EventFields

GENESIS_HASH = "0" * 64
SHA256 = "sha256"
HMAC_PREFIX = "hmac-sha256:"
_EVENT_DOMAIN = b"expertgate.audit.event.v1\n"
_CONTENT_DOMAIN = b"expertgate.audit.content.v1\n"
_TEXT_DOMAIN = b"expertgate.audit.text.v1\n"
_KEY_ID_DOMAIN = b"expertgate.audit.key-id.v1\n"
_SEAL_DOMAIN = b"expertgate.audit.pending.v1\n"


@dataclass(frozen=True, slots=True)
class ChainKey:
    """How hashes are made: HMAC-SHA256 under ``secret``, or SHA-256 when it is None."""

    secret: bytes | None = field(default=None, repr=False)

    @property
    def alg(self) -> str:
        """Stored with every event: ``sha256`` or ``hmac-sha256:<key id>``.

        The key id is a short digest of the key, so a verifier can tell "written under
        another key" apart from "altered" without learning anything about the key.
        """
        if self.secret is None:
            return SHA256
        return HMAC_PREFIX + hashlib.sha256(_KEY_ID_DOMAIN + self.secret).hexdigest()[:12]

    def digest(self, domain: bytes, data: bytes) -> str:
        if self.secret is None:
            return hashlib.sha256(domain + data).hexdigest()
        return hmac.new(self.secret, domain + data, hashlib.sha256).hexdigest()


def key_for_alg(alg: str, configured: ChainKey) -> ChainKey | None:
    """The key that verifies events stored with ``alg``, or None if we do not hold it."""
    if alg == SHA256:
        return ChainKey(None)
    if alg == configured.alg:
        return configured
    return None


def content_digest(key: ChainKey, prompt: str | None, answer: str | None) -> str:
    """Digest of an event's text (keyed, so purged short texts cannot be guessed back)."""
    return key.digest(_CONTENT_DOMAIN, canonical_json({"prompt": prompt, "answer": answer}))


def text_digest(key: ChainKey, text: str) -> str:
    """The stored form of a text under the ``hash`` text policy: ``<alg>:<hex>``."""
    return f"{key.alg}:{key.digest(_TEXT_DOMAIN, text.encode('utf-8'))}"


def format_ts(ts: datetime) -> str:
    """UTC, microseconds, ``Z``. Naive datetimes are UTC (SQLite returns them naive)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventBody(EventFields[datetime]):
    """One event at its place in the chain (``seq``, after ``prev_hash``); a pending
    event has none yet (0 and ""). Every field is hashed but the text (record.py)."""

    seq: int
    prev_hash: str

    def canonical(self) -> bytes:
        return canonical_json({"seq": self.seq, **self._fields(), "prev_hash": self.prev_hash})

    def _fields(self) -> dict[str, object]:
        """Every hashed field but the chain position (seq, prev_hash)."""
        hashed: dict[str, object] = {name: getattr(self, name) for name in HASHED_FIELDS}
        hashed["ts"] = format_ts(self.ts)
        return hashed

    def hash(self, key: ChainKey) -> str:
        return key.digest(_EVENT_DOMAIN, self.canonical())

    def seal(self, key: ChainKey) -> str:
        """Digest of the event while it waits in the outbox, before it has a position.

        Written with the pending row and checked by the chainer before the row is
        chained: without the key, a row inserted into the outbox cannot be passed off
        as an event the application wrote (the chainer would otherwise sign it).
        """
        return key.digest(_SEAL_DOMAIN, canonical_json(self._fields()))
