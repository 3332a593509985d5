"""Frozen values of the quota package."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

OnLimit = Literal["reject", "degrade"]


class LimitKind(StrEnum):
    RPM = "requests_per_minute"
    TOKENS_PER_DAY = "tokens_per_day"
    TOKENS_PER_MONTH = "tokens_per_month"


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """Limits for one subject; None means unlimited."""

    rpm: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    on_limit: OnLimit = "reject"

    def __post_init__(self) -> None:
        for name in ("rpm", "tokens_per_day", "tokens_per_month"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"quota {name} must be >= 1 (or unset), got {value}")


@dataclass(frozen=True, slots=True)
class Limit:
    """A policy bound to the subject it limits: ``user:7``, ``team:legal``, ``global``."""

    subject: str
    policy: QuotaPolicy


@dataclass(frozen=True, slots=True)
class Window:
    """The calendar windows token budgets count in (UTC), and seconds until each resets."""

    day: str
    month: str
    day_reset_s: int
    month_reset_s: int

    @classmethod
    def at(cls, now: datetime) -> Window:
        now = now.astimezone(UTC)
        start_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        next_day = start_day.timestamp() + 86_400
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        next_month = now.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)
        return cls(
            day=now.strftime("%Y-%m-%d"),
            month=now.strftime("%Y-%m"),
            day_reset_s=max(1, int(next_day - now.timestamp())),
            month_reset_s=max(1, int(next_month.timestamp() - now.timestamp())),
        )


@dataclass(frozen=True, slots=True)
class Headroom:
    """What is left under one limit (for ``x-ratelimit-*`` headers and /me/usage)."""

    subject: str
    kind: LimitKind
    limit: int
    remaining: int
    reset_s: float


def headroom_of(limit: Limit, window: Window, rpm_left: int, day_used: int, month_used: int) -> list[Headroom]:
    """What ``limit``'s policy leaves, given its store's counters (every store the same)."""
    p, out = limit.policy, []
    if p.rpm is not None:
        out.append(Headroom(limit.subject, LimitKind.RPM, p.rpm, rpm_left, 60.0))
    if p.tokens_per_day is not None:
        out.append(Headroom(limit.subject, LimitKind.TOKENS_PER_DAY, p.tokens_per_day, p.tokens_per_day - day_used,
                            float(window.day_reset_s)))  # fmt: skip
    if p.tokens_per_month is not None:
        out.append(Headroom(limit.subject, LimitKind.TOKENS_PER_MONTH, p.tokens_per_month,
                            p.tokens_per_month - month_used, float(window.month_reset_s)))  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict for one request.

    Refused: ``subject``/``kind`` name the limit hit and ``retry_after_s`` when to come
    back; ``on_limit`` is that subject's policy. ``store_ok`` is False when the store
    failed and the fail-open setting let the request through uncounted.
    """

    allowed: bool
    headroom: tuple[Headroom, ...] = ()
    subject: str | None = None
    kind: LimitKind | None = None
    retry_after_s: float = 0.0
    on_limit: OnLimit = "reject"
    store_ok: bool = True
    replay: bool = False  # the same request id was admitted before: nothing counted again
