"""Who is asking: the authenticated caller of one request.

A leaf module (it imports nothing of ours) so that every package can name the caller
without depending on identity, which authenticates it.
"""

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
    key_id: int | None = None  # the API key that authenticated this request, if any

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles
