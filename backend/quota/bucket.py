"""Token-bucket arithmetic, shared by the in-process limiter and mirrored by the Lua script.

A bucket of capacity ``rpm`` refills continuously at ``rpm / 60`` tokens per second; a
request takes one token. A full bucket allows a burst of ``rpm`` requests, then a smooth
``rpm`` per minute.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    at: float  # seconds, on the clock the caller uses


def refill(bucket: Bucket | None, rpm: int, now: float) -> Bucket:
    """The bucket at ``now``; a missing bucket starts full."""
    if bucket is None:
        return Bucket(float(rpm), now)
    elapsed = max(0.0, now - bucket.at)
    return Bucket(min(float(rpm), bucket.tokens + elapsed * rpm / 60.0), now)


def retry_after(bucket: Bucket, rpm: int) -> float:
    """Seconds until ``bucket`` (already refilled) holds one whole token."""
    missing = 1.0 - bucket.tokens
    return 0.0 if missing <= 0 else missing * 60.0 / rpm


def take(bucket: Bucket) -> Bucket:
    return Bucket(bucket.tokens - 1.0, bucket.at)
