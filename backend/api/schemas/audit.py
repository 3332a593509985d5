"""API schemas for /api/v1/admin/audit and /api/v1/me/audit."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, get_type_hints

from pydantic import BaseModel, Field, create_model

from backend.api.schemas.paging import NextCursor
from backend.audit.types import SHOWN_FIELDS, AuditEventView, VerifyReport


class UnreadableOut(BaseModel):
    """Why a stored row could not be read; its other fields are then partly empty."""

    kind: str = Field(description="unreadable_row | bad_timestamp")
    problem: str


def _stored_fields() -> dict[str, Any]:
    """The view's stored fields (types.py), in the order they are shown, as required
    pydantic fields; ``ts`` (a type parameter there) given its type and a description."""
    types = get_type_hints(AuditEventView)
    out: dict[str, Any] = {name: (types[name], ...) for name in SHOWN_FIELDS}
    out["ts"] = (
        datetime | None,
        Field(description="null only when the stored timestamp is unreadable (see `unreadable`)"),
    )
    return out


if TYPE_CHECKING:
    _StoredEventOut = BaseModel
else:  # built from the view's fields, so they are listed once (backend/audit/record.py)
    _StoredEventOut = create_model("_StoredEventOut", **_stored_fields())


class AuditEventOut(_StoredEventOut):
    # No docstring: it would become the schema's description (the OpenAPI would change).
    unreadable: UnreadableOut | None = Field(
        default=None, description="set when the stored row is corrupted: run `expertgate audit verify`"
    )
    text_withheld: bool = Field(
        default=False,
        description="prompt and answer withheld: the answer cited documents outside the reader's groups",
    )

    @classmethod
    def of(cls, view: AuditEventView) -> AuditEventOut:
        # The view's fields are this model's, by name and type (``problem`` renamed).
        out = cls.model_validate(view, from_attributes=True)
        if view.problem is not None:
            out.unreadable = UnreadableOut(kind=view.problem.kind, problem=view.problem.problem)
        return out


class AuditPage(BaseModel):
    data: list[AuditEventOut]
    next_cursor: NextCursor


class Integrity(BaseModel):
    """This event checked on its own: its hash, its text digest, its link to seq - 1."""

    hash_ok: bool
    content_ok: bool | None = Field(description="null when the text was purged by retention")
    links_to_previous: bool
    problem: str | None = None


class AuditEventDetail(AuditEventOut):
    integrity: Integrity


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    kind: str | None = Field(default=None, description="what is wrong, stable (docs/governance.md)")
    problem: str | None
    purged: int
    pending: int = Field(description="events written but not yet chained (not verified, not a failure)")
    anchors_checked: int = 0

    @classmethod
    def of(cls, report: VerifyReport) -> VerifyOut:
        return cls.model_validate(report, from_attributes=True)


class RetentionIn(BaseModel):
    days: int | None = Field(default=None, ge=1, description="Defaults to EXPERTGATE_AUDIT_RETENTION_DAYS.")


class RetentionOut(BaseModel):
    purged: int
    cutoff: datetime
