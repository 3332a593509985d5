"""Settings, read once from EXPERTGATE_* environment variables and .env by entrypoints.

Built in the CLI / app factory and passed down; nothing else reads the environment.
A bad value stops the start with a message naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from experts.registry import LOCAL_CONTEXT_TOKENS

_PACKAGE_EXPERTS = Path(__file__).resolve().parent.parent / "experts" / "experts.yaml"
_WEB_DIST = Path(__file__).resolve().parent.parent / "frontend" / "dist"


class SettingsError(Exception):
    """Invalid configuration; the message names each bad field as its env var."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EXPERTGATE_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # `expertgate serve` processes (uvicorn workers); see backend/cli/serve.py for what
    # several workers need (no embedded LLM; Redis for limits shared across them).
    workers: int = Field(default=1, ge=1, le=64)
    # Proxies whose X-Forwarded-For / -Proto uvicorn believes (comma-separated IPs or
    # CIDRs, "*" for any). Behind an ingress set it to the ingress's network, or every
    # client shares the proxy's address (and its failed-login budget).
    forwarded_allow_ips: str = "127.0.0.1"
    database_url: str | None = None
    # Chat exchanges of concurrent requests committed in shared transactions
    # (backend/db/group_commit.py) instead of one ordinary transaction each; docs/load.md.
    group_commit: bool = False
    experts_file: Path = _PACKAGE_EXPERTS
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "json": one JSON object per log line, with the HTTP request id (docs/deploy.md).
    log_format: Literal["text", "json"] = "text"
    # The built web UI (npm run build in frontend/), served at /.
    web_dir: Path = _WEB_DIST

    # SQLite: how long a write waits for another writer's lock before the request gets
    # 503 database_unavailable (PostgreSQL rows lock per row; this does not apply there).
    database_busy_timeout_s: float = Field(default=30.0, gt=0, le=600)

    # Review queue (docs/review.md): a JSON POST here for every decided review.
    review_webhook_url: str | None = None

    # Input guard.
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_input_chars: int = Field(default=48_000, ge=100)
    max_messages: int = Field(default=200, ge=1)
    # One deadline per chat request (routing, retries, back-off and fallbacks together):
    # a non-streamed answer, or a stream's first text, comes within it or the request
    # ends with 504 deadline_exceeded (docs/resilience.md).
    request_deadline_s: float = Field(default=150.0, gt=0, le=3600)

    # The embedded llama.cpp server behind `api_base: local`.
    local_llm_model: Path | None = None
    local_llm_port: int = Field(default=0, ge=0, le=65535)
    local_llm_ctx: int = Field(default=LOCAL_CONTEXT_TOKENS, ge=256)
    # llama.cpp's threads spin while they wait for each other: with as many threads as
    # cores, anything else that runs (this server's own encoder passes for a second user)
    # slows decoding several-fold (bench/results/local_llm.json: 2 threads on 2 cores,
    # 67.7 tokens/s alone, 22.7 beside one busy process; 1 thread 41.8 and 48.2). None:
    # one thread fewer than the cores this process may use (at least 1).
    local_llm_threads: int | None = Field(default=None, ge=1)
    local_llm_startup_s: float = Field(default=120.0, gt=0)

    # First start of the embedded default writes an admin key here (under data_dir).
    bootstrap_admin: bool = True
    bootstrap_admin_email: str = "admin@localhost"

    redis_url: str | None = None
    # Redis on the request path (quotas, capacity, failed-login throttle; see
    # backend/redis_conn.py and docs/resilience.md): the most one call waits for it, a
    # free connection and the connect included. A call that runs out of it marks Redis
    # down for the process: later calls fail at once (fail-open/closed applies) until a
    # background PING, sent every redis_probe_s, answers.
    redis_timeout_s: float = Field(default=1.0, gt=0, le=30)
    redis_probe_s: float = Field(default=0.5, gt=0, le=60)
    # Who runs ingest jobs submitted through the API: "celery" workers (on redis_url as
    # broker), "inline" in the API process, or "auto" (celery when redis_url is set).
    job_runner: Literal["auto", "inline", "celery"] = "auto"
    # Celery on Redis redelivers a task whose worker died once it has been unacknowledged
    # this long; it must exceed the longest task (a big ingest, a retrain).
    celery_visibility_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    # OpenTelemetry traces over OTLP/HTTP, e.g. http://otel-collector:4318 (None: off).
    # The standard OTEL_EXPORTER_OTLP_ENDPOINT is used when this is not set.
    otel_endpoint: str | None = Field(
        default=None,
        # "otel_endpoint" first so that Settings(otel_endpoint=...) works in code.
        validation_alias=AliasChoices("otel_endpoint", "EXPERTGATE_OTEL_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    )
    otel_service_name: str = "expertgate"
    # Continue a caller's W3C traceparent (its trace id becomes the request's). Turn off
    # where untrusted clients reach the API directly: each request then starts a trace.
    otel_continue_traces: bool = True
    # Quotas: when the quota store (Redis) errors, serve uncounted (open) or refuse (closed, 503).
    quota_on_store_error: Literal["open", "closed"] = "open"
    # Expert capacity slots (docs/resilience.md): a slot not released (crashed process,
    # lost stream) frees itself after this many seconds. Store errors follow the quota
    # setting above (open: admit without a slot; closed: 503).
    capacity_lease_s: float = Field(default=300.0, gt=0, le=86_400)
    # Quota policies are cached per process for at most this long (0: no cache).
    quota_policy_ttl_s: float = Field(default=5.0, ge=0, le=3600)

    # The gate: versioned artifacts (shared storage in scale-out) and how often every
    # process checks for a newly promoted version.
    router_dir: Path | None = None
    torch_threads: int = Field(default=1, ge=1, le=256)
    # The encoder's transformer: bfloat16 where the CPU multiplies it natively (~1.6x
    # faster per query here), else float32 (router/encoder.py).
    encoder_precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # The encoder's runtimes (bench/results/encoder_runtime.json, docs/load.md): the base
    # model (retrieval, grounding, safety, indexes) on torch (encoder_precision above) or
    # ONNX Runtime; the gate's routing-tuned encoder on ONNX Runtime (int8: about half of
    # torch's CPU for a lone short query; float32) or on the base's runtime ("base").
    # Defaults: the tuned encoder on int8 (routing within 0.0035 of torch's on the public
    # dev set, inside issue 24's 0.005); the base model on "auto": torch where the CPU
    # multiplies bfloat16 natively (there torch's bfloat16 is the cheapest), else ONNX
    # float32 (the same vectors as torch's float32, cosine 1.0, at 0.6x its CPU for a lone
    # query on a CPU without AVX-512; docs/load.md). int8 for the base moved dense
    # retrieval's MRR@10 by 0.013 and is not a default. An explicit encoder_precision
    # keeps torch. ONNX runs what `make setup` exports (router/onnx_export.py) into
    # encoder_onnx_dir (None: router/encoder-onnx/); without that export the server
    # refuses to start, naming it.
    encoder_runtime: Literal["auto", "torch", "onnx-float32", "onnx-int8"] = "auto"
    router_encoder_runtime: Literal["onnx-int8", "onnx-float32", "base"] = "onnx-int8"
    encoder_onnx_dir: Path | None = None
    router_reload_s: float = Field(default=5.0, gt=0)
    # Vectors and gate scores of recent texts (this many values, up to three per text) are
    # kept per process, so a repeated request skips the encoder passes and the gate's bank
    # product (router/memo.py; a response cache hit is then a few ms). 0: off.
    text_memo_entries: int = Field(default=8192, ge=0, le=1_000_000)
    # The input safety check (docs/safety.md): the shipped model, or another version
    # directory; false turns the check off (every request's scores are then absent).
    safety_check: bool = True
    safety_model_dir: Path | None = None
    # Its second reading (router/safety/reader.py): a tuned encoder pass for the requests
    # the model is unsure of; false turns it off, a directory names another version.
    safety_reader: bool = True
    safety_reader_dir: Path | None = None
    # A retrain tunes the encoder's layers as the shipped gate's was (a few minutes on 2
    # cores; docs/router.md); false fits the head on the base encoder alone (seconds).
    router_finetune: bool = True
    secret_key: SecretStr | None = None

    # Audit trail (docs/governance.md). Text of prompts and answers is stored per
    # audit_text; audit_retention_days drops it after that many days (None: keep).
    audit_text: Literal["full", "redacted", "hash"] = "redacted"
    audit_retention_days: int | None = Field(default=None, ge=1)
    # The chain's HMAC key when secret_key is not set: a random key created on first
    # start in this file (default data_dir/audit.key, mode 0600), never in the database.
    audit_key_file: Path | None = None
    # Signed chain heads ("anchors") are appended here (default
    # data_dir/audit-anchors.jsonl) every audit_anchor_interval_s by the API and at its
    # shutdown; `expertgate audit verify` checks them. Keep it where the database's
    # writers cannot write (another volume, a log shipper).
    audit_anchor_file: Path | None = None
    audit_anchor_interval_s: float = Field(default=300.0, gt=0, le=86_400)
    # The console dashboard's cost estimate: USD per 1,000 tokens (both 0: no estimate).
    cost_per_1k_prompt_tokens: float = Field(default=0.0, ge=0)
    cost_per_1k_completion_tokens: float = Field(default=0.0, ge=0)

    # Knowledge (docs/retrieval.md). Indexes live under data_dir/indexes. ingest_roots:
    # folders the CLI may ingest from (empty: the working directory and the shipped
    # samples); a JSON list in the environment, e.g. '["/srv/docs"]'.
    knowledge_passages: int = Field(default=4, ge=0, le=20)
    knowledge_reload_s: float = Field(default=2.0, ge=0)
    ingest_roots: tuple[Path, ...] = ()
    ingest_max_file_bytes: int = Field(default=20_000_000, ge=1)
    upload_max_bytes: int = Field(default=25_000_000, ge=1024)
    index_hnsw_threshold: int = Field(default=7_500, ge=1)
    # Documents through the safety check (docs/safety.md, "Documents"): every chunk is
    # scored at ingestion; a flagged passage is fenced as quoted data in the prompt,
    # dropped, or (quarantine) its document stays out of the index until an admin
    # releases it. Per domain: a JSON object in the environment, '{"legal": "drop"}'.
    safety_documents: Literal["fence", "drop", "quarantine"] = "fence"
    safety_documents_domains: dict[str, Literal["fence", "drop", "quarantine"]] = Field(default_factory=dict)
    # A chunk is flagged at this score (unset: the safety model's calibrated threshold,
    # tuned on requests; documents' prose scores higher, docs/safety.md has figures).
    safety_documents_threshold: float | None = Field(default=None, gt=0, le=1)

    # Slack (docs/slack.md). /slack/events is mounted only when the signing secret and
    # bot token are both set; Socket Mode (`expertgate slack --socket`) needs the app token.
    slack_signing_secret: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    # Unknown Slack users: create an expertgate user from their Slack email, or refuse.
    slack_auto_provision: bool = False
    # Least time between two chat.update calls while an answer streams (Slack's limit is
    # about one update per second per message).
    slack_update_interval_s: float = Field(default=1.0, ge=0)
    # Where answers run: inline in the API process, or as Celery tasks (needs redis_url).
    slack_dispatch: Literal["auto", "inline", "celery"] = "auto"

    # Web sign-in (docs/governance.md, "SSO"). OpenID Connect is on when oidc_issuer and
    # oidc_client_id are set. oidc_redirect_url defaults to {request origin}/auth/oidc/callback.
    # oidc_admin_groups / oidc_auditor_groups: groups (from oidc_groups_claim) granting
    # those roles, JSON lists in the environment. The state cookie and web sessions are
    # signed with secret_key (a per-process random key when unset: one replica only).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_url: str | None = None
    oidc_scopes: str = "openid email profile"
    oidc_groups_claim: str = "groups"
    oidc_admin_groups: tuple[str, ...] = ()
    oidc_auditor_groups: tuple[str, ...] = ()
    web_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Failed authentications (bad API keys, failed SSO callbacks) allowed per client IP
    # per minute before 429; shared through Redis when redis_url is set.
    auth_failures_per_minute: int = Field(default=10, ge=1)
    # How long an API process reuses a verified API key or web session without reading it
    # again (0: read every request). Bounds how long a key revoked or a session logged out
    # by another process (a CLI, another replica) or a changed user keeps working here; a
    # revocation or logout through this process takes effect at once. docs/governance.md,
    # "Keys".
    auth_cache_ttl_s: float = Field(default=5.0, ge=0, le=300)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @field_validator("oidc_issuer", "oidc_redirect_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return value.rstrip("/")

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def slack_configured(self) -> bool:
        """Whether the HTTP events endpoint can run (signing secret and bot token set)."""
        return self.slack_signing_secret is not None and self.slack_bot_token is not None

    @property
    def resolved_audit_key_file(self) -> Path:
        return self.audit_key_file or self.data_dir / "audit.key"

    @property
    def resolved_audit_anchor_file(self) -> Path:
        return self.audit_anchor_file or self.data_dir / "audit-anchors.jsonl"

    @property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL: given URL with an async driver, or SQLite under data_dir."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'expertgate.db').resolve()}"
        return to_async_url(url)


def to_async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def to_sync_url(url: str) -> str:
    """The same database through a synchronous driver (Alembic runs synchronously)."""
    return url.replace("sqlite+aiosqlite://", "sqlite://")


def load_settings(**overrides: object) -> Settings:
    """Build Settings or raise SettingsError naming the offending EXPERTGATE_* variables."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            lines.append(f"EXPERTGATE_{field.upper()}: {err['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
