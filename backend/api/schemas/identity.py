"""API schemas for /api/v1/me and /api/v1/admin/keys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from backend.identity.types import KeyInfo


class KeyOut(BaseModel):
    id: int
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    name: str
    user_id: int
    email: str
    roles: list[str]
    created_at: datetime
    last_used_at: datetime | None = Field(description="Refreshed at most once a minute.")
    revoked_at: datetime | None

    @classmethod
    def of(cls, info: KeyInfo) -> KeyOut:
        return cls(
            id=info.key_id,
            prefix=info.prefix,
            name=info.name,
            user_id=info.user_id,
            email=info.email,
            roles=list(info.roles),
            created_at=info.created_at,
            last_used_at=info.last_used_at,
            revoked_at=info.revoked_at,
        )


class KeyList(BaseModel):
    data: list[KeyOut]


class KeyCreate(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    role: Literal["user", "auditor", "reviewer", "admin"] = "user"
    groups: list[str] = Field(default_factory=list, max_length=50)
    team: str | None = Field(default=None, max_length=120)
    name: str = Field(default="", max_length=120)


class IssuedKeyOut(BaseModel):
    key: KeyOut
    secret: str = Field(description="Shown once; only its SHA-256 is stored.")


class MeOut(BaseModel):
    user_id: int
    email: str
    team: str | None
    groups: list[str]
    roles: list[str]
    channel: str
    key: KeyOut | None
