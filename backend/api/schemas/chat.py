"""API schemas for /v1 (the OpenAI wire shapes, plus the ``expertgate`` extension)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator


def _encodable(text: str) -> str:
    """Text that every later stage can encode. JSON may carry a lone UTF-16 surrogate
    (``"\\ud800"``), which Python keeps in a str but no encoder, tokenizer or database
    accepts: refused here, at the edge, as the caller's error (400)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text holds a lone UTF-16 surrogate at character {exc.start}, which is not valid Unicode"
        ) from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]


class TextPart(BaseModel):
    type: Literal["text"]
    text: Text


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content)


class ChatRequest(BaseModel):
    # OpenAI clients send many optional knobs; unknown ones are ignored, known ones checked.
    model_config = ConfigDict(extra="ignore")

    model: Text = Field(min_length=1, max_length=64)
    messages: list[MessageIn] = Field(min_length=1)
    stream: StrictBool = False  # JSON true/false only: "yes" or 1 is a 400, not a guess
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    conversation_id: Text | None = Field(default=None, min_length=1, max_length=36)
    # Accepted for the clients that send n=1; any other count would be silently dropped.
    n: int | None = Field(default=None, description="How many answers: 1, the only count expertgate gives.")

    @field_validator("n")
    @classmethod
    def _one_answer(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("expertgate returns one answer per request, so n must be 1")
        return value

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, value: list[MessageIn]) -> list[MessageIn]:
        if value[-1].role != "user":
            raise ValueError("the last message must have role 'user'")
        if not value[-1].text().strip():
            raise ValueError("the last user message is empty")
        return value


class RouteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text | None = Field(default=None, min_length=1)
    messages: list[MessageIn] | None = Field(default=None, min_length=1)
    model: Text = Field(default="auto", min_length=1, max_length=64)
    conversation_id: Text | None = Field(default=None, min_length=1, max_length=36)


class Citation(BaseModel):
    """A numbered passage the answer may cite as [number]; ``score`` is in [0, 1]."""

    number: int
    title: str
    source: str
    snippet: str
    score: float
    location: str | None = None  # "lines 12-30", "page 3"
    document_id: int | None = None  # its whole text: GET /api/v1/documents/{document_id}/text


class FallbackOut(BaseModel):
    expert: str
    error: str


class UnsupportedOut(BaseModel):
    """A span of the answer its cited passages do not support (offsets into the text)."""

    start: int
    end: int
    text: str
    reason: str  # number_mismatch | unsupported | contradiction
    detail: str


class GroundingOut(BaseModel):
    """The answer checked against the passages it cites (docs/grounding.md).
    ``score``: the share of its claims they support; None when nothing was checked.
    ``pasted``: the material pasted with the question (an e-mail to summarise) was a
    source too, for the claims that cite no passage."""

    score: float | None
    checked: int
    unsupported: list[UnsupportedOut] = []
    action: str = "none"  # what the expert's policy did: none | flag | quote | refuse
    pasted: bool = False


class ReviewRef(BaseModel):
    """An answer sent to a person (docs/review.md): ``GET /api/v1/reviews/{id}`` tells
    its asker the outcome. ``status``: pending | approved | edited | rejected."""

    id: str
    status: str


class CacheOut(BaseModel):
    """What the response cache did for this request (docs/cache.md). ``status``: hit |
    miss | bypass (``Cache-Control: no-cache``) | skipped (not a first turn, or PII).
    On a hit: ``match`` (exact | semantic), the question's ``similarity`` to the cached
    one, the request the answer was generated for, and the tokens it saved. Absent when
    the expert's cache is off."""

    status: str
    ms: float
    match: str | None = None
    similarity: float | None = None
    source_request_id: str | None = None
    tokens_saved: int | None = None
    rejected: dict[str, int] | None = None  # candidates passed over: stale, forbidden...


class RouteInfo(BaseModel):
    """The ``expertgate`` object on every response."""

    expert: str
    confidence: float
    reason: str
    # Why, in words, when the reason needs it (e.g. "legal at capacity" for overflow).
    detail: str = ""
    router_version: str
    top_k: list[str]
    probabilities: dict[str, float]
    citations: list[Citation] = []
    fallbacks: list[FallbackOut] = []
    request_id: str
    conversation_id: str | None = None
    upstream_model: str | None = None
    grounding: GroundingOut | None = None  # on the final answer (a stream's last chunk)
    review: ReviewRef | None = None  # the answer went to a person (a stream's last chunk)
    cache: CacheOut | None = None  # the response cache (on a stream's first and last chunks)


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageOut
    expertgate: RouteInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "expertgate"
    description: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class RouteResponse(BaseModel):
    expertgate: RouteInfo
