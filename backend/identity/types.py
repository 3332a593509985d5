from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly created API key. ``secret`` is shown once and never stored."""

    key_id: int
    user_id: int
    email: str
    secret: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An API key as listed: everything but the secret (which is never stored)."""

    key_id: int
    prefix: str
    name: str
    user_id: int
    email: str
    roles: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
