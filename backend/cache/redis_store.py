"""The response cache shared by every replica, in Redis.

Keys, per scope (keys.py) under ``prefix``:

- ``{p}:e:{scope}:{id}``   the answer (JSON), expiring with it;
- ``{p}:x:{scope}:{text}`` a hash, variant -> id of the answer to that question text
                           (store.py: variants), expiring with the newest;
- ``{p}:l:{scope}``        a list, one item per answer kept: its id, NUL, its question's
                           unit embedding (float32 bytes): the log each process mirrors;
- ``{p}:b:{scope}``        how many items were trimmed off the log's head (the log keeps
                           at most ``max_entries``);
- ``{p}:n:{scope}``        the log's epoch, a random token set when it is created.

A lookup is two round trips whatever the cache's size: one script returns the exact
matches' ids and the log items this process has not yet seen; the process adds them to
its mirror (store.VectorSet) and compares the question's embedding there; then one
MGET reads the candidates. An answer that has expired is gone from Redis, so a
mirrored vector that outlived it matches nothing. If the log was recreated (its epoch
changed) the mirror starts again.

Redis errors propagate (``redis.exceptions.RedisError``); service.py counts them and
answers as a miss, never failing the request for the cache.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from redis.asyncio import Redis

from backend.cache.store import VectorSet, rank_exact
from backend.cache.types import CachedAnswer, CachedPassage, Candidate, MatchKind, Vector
from experts.types import Usage

# KEYS: log, base, epoch, exact. ARGV: the absolute position to read the log from,
# the epoch the caller has. Returns base, epoch, the exact matches' ids, the items from
# the position read, and that position relative to base (0 after a new epoch).
_READ = """
local base = tonumber(redis.call('GET', KEYS[2]) or '0')
local epoch = redis.call('GET', KEYS[3]) or ''
local start = tonumber(ARGV[1]) - base
if epoch ~= ARGV[2] or start > redis.call('LLEN', KEYS[1]) then start = 0 end
if start < 0 then start = 0 end
return {base, epoch, redis.call('HVALS', KEYS[4]), redis.call('LRANGE', KEYS[1], start, -1), start}
"""

# KEYS: entry, exact, log, base, epoch, the entry key's prefix (for the replaced one).
# ARGV: entry JSON, id, log item, ttl ms, max entries, a new epoch token, variant.
_PUT = """
local old = redis.call('HGET', KEYS[2], ARGV[7])
if old and old ~= ARGV[2] then redis.call('DEL', KEYS[6] .. old) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[7], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[5], ARGV[6], 'NX')
local n = redis.call('RPUSH', KEYS[3], ARGV[3])
local over = n - tonumber(ARGV[5])
if over > 0 then
  redis.call('LTRIM', KEYS[3], over, -1)
  redis.call('INCRBY', KEYS[4], over)
end
for i = 3, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
return n
"""


@dataclass
class _Mirror:
    epoch: str = ""
    seen: int = 0  # absolute log position read up to
    vectors: VectorSet | None = None
    positions: dict[str, int] = field(default_factory=dict)  # id -> absolute position


class RedisStore:
    """The shared store (module docstring). One per process; its mirrors are per scope."""

    def __init__(self, redis: Redis, prefix: str = "eg:cache") -> None:
        self._redis = redis
        self._prefix = prefix
        self._read: Any = redis.register_script(_READ)
        self._put: Any = redis.register_script(_PUT)
        self._mirrors: dict[str, _Mirror] = {}

    def _keys(self, scope: str) -> tuple[str, str, str]:
        p = self._prefix
        return f"{p}:l:{scope}", f"{p}:b:{scope}", f"{p}:n:{scope}"

    def _entry(self, scope: str, entry_id: str) -> str:
        return f"{self._prefix}:e:{scope}:{entry_id}"

    def _exact(self, scope: str, text_key: str) -> str:
        return f"{self._prefix}:x:{scope}:{text_key}"

    async def find(
        self, scope: str, text_key: str, vector: Vector | None, threshold: float, limit: int
    ) -> list[Candidate]:
        mirror = self._mirrors.setdefault(scope, _Mirror())
        base_raw, epoch_raw, exact_raw, items, start = await self._read(
            keys=[*self._keys(scope), self._exact(scope, text_key)], args=[mirror.seen, mirror.epoch]
        )
        self._sync(mirror, int(base_raw), _text(epoch_raw), int(start), items)
        exact_ids = {_text(raw) for raw in exact_raw}
        wanted: list[tuple[str, MatchKind, float]] = [(i, MatchKind.EXACT, 1.0) for i in sorted(exact_ids)]
        if vector is not None and mirror.vectors is not None and mirror.vectors.dim == vector.shape[0]:
            nearest = mirror.vectors.nearest(vector, threshold, limit + len(exact_ids))
            wanted += [(i, MatchKind.SEMANTIC, sim) for i, sim in nearest if i not in exact_ids][:limit]
        if not wanted:
            return []
        blobs = await self._redis.mget([self._entry(scope, i) for i, _, _ in wanted])
        exact: list[Candidate] = []
        semantic: list[Candidate] = []
        for (entry_id, match, similarity), blob in zip(wanted, blobs, strict=True):
            if blob is None:  # expired or replaced: forget its vector here too
                if mirror.vectors is not None:
                    mirror.vectors.remove(entry_id)
                continue
            (exact if match is MatchKind.EXACT else semantic).append(Candidate(decode(blob), match, similarity))
        return rank_exact(exact) + semantic

    def _sync(self, mirror: _Mirror, base: int, epoch: str, start: int, items: list[bytes]) -> None:
        """Add the log items read from absolute position ``base + start``."""
        if epoch != mirror.epoch:  # a new log: what was mirrored belongs to the old one
            mirror.vectors, mirror.positions, mirror.epoch = None, {}, epoch
        mirror.seen = base + start
        for item in items:
            entry_id, _, raw = bytes(item).partition(b"\x00")
            name = entry_id.decode()
            row = np.frombuffer(raw, dtype=np.float32)
            if row.shape[0]:
                if mirror.vectors is None:
                    mirror.vectors = VectorSet(row.shape[0])
                if row.shape[0] == mirror.vectors.dim:
                    mirror.vectors.add(name, row)
                    mirror.positions[name] = mirror.seen
            mirror.seen += 1
        if mirror.vectors is not None:  # trimmed off the log: its answer is among the oldest
            for name in [n for n, pos in mirror.positions.items() if pos < base]:
                mirror.vectors.remove(name)
                del mirror.positions[name]

    async def put(
        self, scope: str, text_key: str, variant: str, vector: Vector | None, answer: CachedAnswer, max_entries: int
    ) -> None:
        ttl_ms = max(1, int((answer.expires_at - answer.stored_at) * 1000))
        row = b"" if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
        log, base, epoch = self._keys(scope)
        await self._put(
            keys=[self._entry(scope, answer.request_id), self._exact(scope, text_key), log, base, epoch,
                  self._entry(scope, "")],
            args=[encode(answer), answer.request_id, answer.request_id.encode() + b"\x00" + row, ttl_ms,
                  max_entries, secrets.token_hex(8), variant],
        )  # fmt: skip


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def encode(answer: CachedAnswer) -> bytes:
    """The answer as JSON (what Redis keeps)."""
    return orjson.dumps(
        {
            "request_id": answer.request_id,
            "expert": answer.expert,
            "question": answer.question,
            "text": answer.text,
            "upstream_model": answer.upstream_model,
            "usage": [answer.usage.prompt_tokens, answer.usage.completion_tokens],
            "passages": [
                {
                    "number": p.number,
                    "chunk_id": p.chunk_id,
                    "document_id": p.document_id,
                    "domain": p.domain,
                    "title": p.title,
                    "source": p.source,
                    "location": p.location,
                    "snippet": p.snippet,
                    "score": p.score,
                    "groups": sorted(p.groups),
                }
                for p in answer.passages
            ],
            "domains": list(answer.domains),
            "index_versions": [list(v) for v in answer.index_versions],
            "grounding": answer.grounding,
            "stored_at": answer.stored_at,
            "expires_at": answer.expires_at,
        }
    )


def decode(blob: bytes | str) -> CachedAnswer:
    raw = orjson.loads(blob)
    prompt, completion = raw["usage"]
    return CachedAnswer(
        request_id=raw["request_id"],
        expert=raw["expert"],
        question=raw["question"],
        text=raw["text"],
        upstream_model=raw["upstream_model"],
        usage=Usage(int(prompt), int(completion)),
        passages=tuple(CachedPassage(**{**p, "groups": frozenset(p["groups"])}) for p in raw["passages"]),
        domains=tuple(raw["domains"]),
        index_versions=tuple((str(d), str(v)) for d, v in raw["index_versions"]),
        grounding=raw["grounding"],
        stored_at=float(raw["stored_at"]),
        expires_at=float(raw["expires_at"]),
    )
