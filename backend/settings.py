"""Settings, read once from EXPERTGATE_* environment variables and .env by entrypoints.

Built in the CLI / app factory and passed down; nothing else reads the environment.
A bad value stops the start with a message naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    database_url: str | None = None
    experts_file: Path = _PACKAGE_EXPERTS
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "json": one JSON object per log line, with the HTTP request id (docs/deploy.md).
    log_format: Literal["text", "json"] = "text"
    # The built web UI (npm run build in frontend/), served at /.
    web_dir: Path = _WEB_DIST

    # Input guard.
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_input_chars: int = Field(default=48_000, ge=100)
    max_messages: int = Field(default=200, ge=1)

    # The embedded llama.cpp server behind `api_base: local`.
    local_llm_model: Path | None = None
    local_llm_port: int = Field(default=0, ge=0, le=65535)
    local_llm_ctx: int = Field(default=2048, ge=256)
    local_llm_threads: int = Field(default=2, ge=1)
    local_llm_startup_s: float = Field(default=120.0, gt=0)

    # First start of the embedded default writes an admin key here (under data_dir).
    bootstrap_admin: bool = True
    bootstrap_admin_email: str = "admin@localhost"

    redis_url: str | None = None
    # Quotas: when the quota store (Redis) errors, serve uncounted (open) or refuse (closed, 503).
    quota_on_store_error: Literal["open", "closed"] = "open"

    # The gate: versioned artifacts (shared storage in scale-out) and how often every
    # process checks for a newly promoted version.
    router_dir: Path | None = None
    torch_threads: int = Field(default=1, ge=1, le=256)
    router_reload_s: float = Field(default=5.0, gt=0)
    secret_key: SecretStr | None = None

    # Audit trail (docs/governance.md). Text of prompts and answers is stored per
    # audit_text; audit_retention_days drops it after that many days (None: keep).
    audit_text: Literal["full", "redacted", "hash"] = "redacted"
    audit_retention_days: int | None = Field(default=None, ge=1)

    # Knowledge (docs/retrieval.md). Indexes live under data_dir/indexes. ingest_roots:
    # folders the CLI may ingest from (empty: the working directory and the shipped
    # samples); a JSON list in the environment, e.g. '["/srv/docs"]'.
    knowledge_passages: int = Field(default=4, ge=0, le=20)
    knowledge_reload_s: float = Field(default=2.0, ge=0)
    ingest_roots: tuple[Path, ...] = ()
    ingest_max_file_bytes: int = Field(default=20_000_000, ge=1)
    upload_max_bytes: int = Field(default=25_000_000, ge=1024)
    index_hnsw_threshold: int = Field(default=7_500, ge=1)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

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
