"""ORM models. SQL is the source of truth; indexes and counters are derived from it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The OpenID Connect subject ("iss sub") this user signs in as, once linked by email.
    oidc_subject: Mapped[str | None] = mapped_column(String(512), unique=True)
    # The linked Slack account (backend/slack), set on first contact from Slack.
    slack_user_id: Mapped[str | None] = mapped_column(String(32), unique=True)

    team: Mapped[Team | None] = relationship(lazy="joined")


class ApiKey(Base):
    """An API key, stored as the SHA-256 of the secret (keys are 256-bit random tokens)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(lazy="joined")


class WebSession(Base):
    """A signed-in browser (after SSO): the cookie's SHA-256, never the cookie itself."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(lazy="joined")


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    channel: Mapped[str] = mapped_column(String(20), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    expert: Mapped[str | None] = mapped_column(String(32))
    route: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEventColumns:
    """The columns ``audit_events`` and ``audit_outbox`` share: one per field of
    :class:`backend.audit.record.EventFields`, same names and order, with their SQL
    types (tests/backend/audit/test_audit_record.py holds the two lists in step)."""

    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(Integer)
    user_email: Mapped[str | None] = mapped_column(String(320))
    team: Mapped[str | None] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(20))
    expert: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prompt: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    content_digest: Mapped[str] = mapped_column(String(64))
    alg: Mapped[str] = mapped_column(String(40))


class AuditEvent(AuditEventColumns, Base):
    """One hash-chained audit event (backend/audit): the shared columns plus its chain
    position (seq, prev_hash, hash). Rows are appended, never updated, except that
    retention may null ``prompt``/``answer`` and set ``content_purged_at``.

    No foreign keys: the record must outlive the users and keys it names.
    """

    __tablename__ = "audit_events"
    # Few indexes: every one is paid on each append (the outbox has none).
    __table_args__ = tuple(Index(f"ix_audit_events_{c}", c) for c in ("ts", "request_id", "user_id", "user_email"))

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    content_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditOutbox(AuditEventColumns, Base):
    """An audit event written by a request and not yet chained (backend/audit/chainer.py).

    The shared columns, without a chain position, plus ``seal``: a keyed digest of the
    fields, checked by the chainer, so a row slipped into this table by someone without
    the key is never chained as genuine.
    """

    __tablename__ = "audit_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    seal: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The single row (id 1) holding the chain's last seq and hash.

    Chaining (backend/audit/chainer.py) updates it first, which serializes chainers: a
    row lock on PostgreSQL, the database write lock on SQLite. It also lets verify
    notice deleted tail events.
    """

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class Document(Base):
    """One ingested file of a knowledge domain (backend/knowledge).

    ``source`` is unique per domain (a path relative to an allowed root, or
    ``upload/<name>``); ``groups`` empty means every caller may see it.
    """

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("domain", "source", name="uq_documents_domain_source"),
        # Ids are never reused (SQLite would reuse the highest after a delete): an index
        # version built before a delete must not name a newer row.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(1024))
    title: Mapped[str] = mapped_column(String(500))
    media_type: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The safety scan of its chunks (backend/knowledge/safety.py): flagged chunk count,
    # top category and score, model version and threshold; null: not scanned yet.
    safety: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # An admin released it from quarantine (for this content: a new version clears it).
    safety_released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    safety_released_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class DocumentChunk(Base):
    """A chunk of a document: its text, place in the source, and embedding.

    ``embedding`` is the float32 little-endian vector made by ``embedder``; keeping it
    here lets an index be rebuilt from SQL without re-embedding.
    """

    __tablename__ = "chunks"
    __table_args__ = (
        Index("ix_chunks_domain_id", "domain", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(64))
    ordinal: Mapped[int] = mapped_column(Integer)
    title_path: Mapped[list[str]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text)
    start_line: Mapped[int | None] = mapped_column(Integer)
    end_line: Mapped[int | None] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedder: Mapped[str | None] = mapped_column(String(100))
    # The safety model's top category and its score for this chunk, and the model
    # version that scored it (null: not scored yet; backend/knowledge/safety.py).
    safety_category: Mapped[str | None] = mapped_column(String(32))
    safety_score: Mapped[float | None] = mapped_column(Float)
    safety_model: Mapped[str | None] = mapped_column(String(64))


class IngestJob(Base):
    """One ingestion batch: its inputs, progress and per-file results."""

    __tablename__ = "ingest_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    domain: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    total_files: Mapped[int] = mapped_column(Integer, default=0)
    done_files: Mapped[int] = mapped_column(Integer, default=0)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    index_version: Mapped[str | None] = mapped_column(String(64))
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "host:pid" of the process that holds the job: its submitter while it is queued, its
    # runner while it runs (backend/knowledge/jobs.py: a job whose holder died is resumed).
    holder: Mapped[str | None] = mapped_column(String(160))


class TrainingExample(Base):
    """A labelled routing example beyond the shipped seed set (feedback or admin relabel)."""

    __tablename__ = "training_examples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    domain: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(16))  # "feedback" | "admin"
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    """A user's verdict on one answer; thumbs-down without a label waits for an admin."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    rating: Mapped[str] = mapped_column(String(8))  # "up" | "down"
    comment: Mapped[str | None] = mapped_column(Text)
    expected_expert: Mapped[str | None] = mapped_column(String(32))
    routed_expert: Mapped[str | None] = mapped_column(String(32))
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QuotaPolicyRow(Base):
    """Limits for one user (email), one team (name) or everyone (scope ``global``, name ``*``).

    NULL limit = unlimited. The source of truth; Redis counters are derived from it.
    """

    __tablename__ = "quota_policies"
    __table_args__ = (UniqueConstraint("scope", "name", name="uq_quota_policies_scope_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))  # "user" | "team" | "global"
    name: Mapped[str] = mapped_column(String(320))
    rpm: Mapped[int | None] = mapped_column(Integer)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger)
    tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)
    on_limit: Mapped[str] = mapped_column(String(8), default="reject")  # "reject" | "degrade"
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ArtifactPointer(Base):
    """The published version of a router (kind ``router``) or a domain index (kind ``index``).

    Publishers write the version's files first (complete, renamed into place), then this
    row; every API replica polls it and loads ``path`` after checking ``checksum``.
    ``version`` NULL: nothing published under this name (e.g. the shadow gate stopped).
    """

    __tablename__ = "artifact_pointers"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "router" | "index"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # "active", "shadow", a domain
    version: Mapped[str | None] = mapped_column(String(128))
    path: Mapped[str | None] = mapped_column(String(1024))
    checksum: Mapped[str | None] = mapped_column(String(64))  # SHA-256 hex, see the publisher
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_by: Mapped[str] = mapped_column(String(200), default="")


class SlackThread(Base):
    """A Slack thread (per asking Slack user) and the conversation it continues."""

    __tablename__ = "slack_threads"
    __table_args__ = (
        UniqueConstraint("channel_id", "thread_ts", "slack_user_id", name="uq_slack_threads_thread_user"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    thread_ts: Mapped[str] = mapped_column(String(32))
    slack_user_id: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SlackEvent(Base):
    """An Events API delivery already taken: Slack retries carry the same event id."""

    __tablename__ = "slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Review(Base):
    """A high-risk answer queued for a person (backend/review, docs/review.md).

    Written in the transaction of its exchange. ``draft`` is what the model answered (with
    ``delivery`` hold, the asker's stored message shows a placeholder instead until a
    reviewer decides); ``final_text`` is what replaced it. ``status``: pending | approved
    | edited | rejected. ``channel`` and ``asker_id`` say who asked, and where.
    """

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    asker_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20), default="api")
    expert: Mapped[str] = mapped_column(String(32), index=True)
    trigger: Mapped[str] = mapped_column(String(16))  # on_fail | always | sample
    delivery: Mapped[str] = mapped_column(String(24))  # hold | deliver_with_notice
    question: Mapped[str] = mapped_column(Text)
    draft: Mapped[str] = mapped_column(Text)
    grounding: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    final_text: Mapped[str | None] = mapped_column(Text)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewer_email: Mapped[str | None] = mapped_column(String(320))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SafetyFlag(Base):
    """A request the input safety check flagged (backend/safety, docs/safety.md).

    Written by the chat recorder in the transaction of the request's audit event, one
    row per request (``request_id`` unique), answered or refused. ``action`` is what the
    experts' policy did (allow | flag | general | refuse); ``excerpt`` the last user
    message as the audit trail's free text is kept (PII redacted; None under the
    ``hash`` text policy). ``label`` is an admin's verdict on it (None: not reviewed;
    benign: a false positive; injection | jailbreak | extraction: the right category),
    exported as training data. No foreign keys, like the audit trail: a flag outlives
    the user it names.
    """

    __tablename__ = "safety_flags"
    __table_args__ = (Index("ix_safety_flags_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(Integer)
    user_email: Mapped[str | None] = mapped_column(String(320))
    channel: Mapped[str] = mapped_column(String(20))
    expert: Mapped[str] = mapped_column(String(32), index=True)
    category: Mapped[str] = mapped_column(String(16), index=True)
    score: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(16))
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    rules: Mapped[list[str]] = mapped_column(JSON)
    model: Mapped[str] = mapped_column(String(64))
    excerpt: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(16))
    labelled_by: Mapped[str | None] = mapped_column(String(320))
    labelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
