from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: int
    email: str
    team: str | None
    groups: frozenset[str]
    roles: frozenset[str]
    channel: str = "api"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly created API key. ``secret`` is shown once and never stored."""

    key_id: int
    user_id: int
    email: str
    secret: str
