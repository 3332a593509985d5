"""API schemas for feedback and router administration."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.api.schemas.paging import NextCursor


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=36)
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=2000)
    expected_expert: str | None = Field(default=None, max_length=32)


class FeedbackOut(BaseModel):
    id: int


class FeedbackQueueItem(BaseModel):
    id: int
    request_id: str
    rating: str
    comment: str | None
    expected_expert: str | None
    routed_expert: str | None
    question: str


class FeedbackEntryOut(BaseModel):
    id: int
    request_id: str
    rating: Literal["up", "down"]
    comment: str | None
    routed_expert: str | None = Field(description="the expert that answered")
    expected_expert: str | None = Field(description="the expert the user says it should have gone to")
    resolved: bool = Field(description="became a training example (the user's label or an admin's relabel)")
    created_at: datetime
    user_email: str | None
    question: str | None = Field(description="the question asked; null once its conversation was deleted")


class FeedbackPageOut(BaseModel):
    data: list[FeedbackEntryOut]
    next_cursor: NextCursor


class RelabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=36)
    domain: str = Field(min_length=1, max_length=32)


class RelabelOut(BaseModel):
    example_id: int
    domain: str


class GateVersionOut(BaseModel):
    version: str
    created_at: str
    experts: list[str]
    architecture: str
    data_hash: str
    metrics: dict[str, object]
    active: bool
    shadow: bool


class RouterStatusOut(BaseModel):
    serving: str
    active: str | None
    shadow: str | None
    shadow_compared: int
    shadow_agreement: float | None
    rollback_to: str | None = Field(
        default=None, description="the version a rollback re-activates; null: fewer than two promotions recorded"
    )
    versions: list[GateVersionOut]


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=80)


class ShadowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, max_length=80)


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    promote: bool = False


class TrainOut(BaseModel):
    version: str
    promoted: bool
    n_examples: int
    validation: dict[str, object]
