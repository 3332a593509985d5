"""Frozen values of the flag list (no ORM rows cross this package's boundary)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Label = Literal["benign", "injection", "jailbreak", "extraction"]
LABELS: tuple[Label, ...] = ("benign", "injection", "jailbreak", "extraction")
UNLABELLED = "unlabelled"  # the list's label filter: flags nobody has labelled yet
Action = Literal["allow", "flag", "general", "refuse"]


@dataclass(frozen=True, slots=True)
class FlagFilter:
    """Which flags to list. Every field narrows; None means no condition. ``label`` is
    one of LABELS or UNLABELLED; ``since`` inclusive, ``until`` exclusive (UTC)."""

    category: str | None = None
    expert: str | None = None
    action: str | None = None
    label: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class FlagView:
    """One flagged request. ``score``: the flagged category's; ``scores``: every
    category's; ``excerpt``: the last user message as the audit trail keeps free text
    (None under the ``hash`` text policy); ``audit_seq``: the request's audit event in the
    chain (None until it is chained)."""

    flag_id: int
    request_id: str
    created_at: datetime
    user_id: int | None
    user_email: str | None
    channel: str
    expert: str
    category: str
    score: float
    action: str
    scores: Mapping[str, float]
    rules: tuple[str, ...]
    model: str
    excerpt: str | None
    label: str | None
    labelled_by: str | None
    labelled_at: datetime | None
    audit_seq: int | None = None


@dataclass(frozen=True, slots=True)
class FlagPage:
    flags: tuple[FlagView, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class FlagCount:
    expert: str
    category: str
    count: int


@dataclass(frozen=True, slots=True)
class FlagStats:
    """Flags created in ``[since, until)``: per expert and category, per action, and how
    many admins have labelled (``labels``: label -> count; ``unlabelled`` the rest)."""

    since: datetime
    until: datetime
    total: int
    cells: tuple[FlagCount, ...]
    by_action: Mapping[str, int]
    labels: Mapping[str, int]
    unlabelled: int


@dataclass(frozen=True, slots=True)
class TrainingRow:
    """One row of router/safety/data's format (PLAN.md): an admin's label on the
    excerpt of a flagged request."""

    text: str
    label: str
    cell: str = "console"
    style: str = "relabelled"
