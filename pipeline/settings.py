"""Settings from the environment; secrets are read here and nowhere else.

Every setting is declared once below, with its type and default (pydantic). Its environment
variable is the field name in capitals (``lease_seconds`` <- ``LEASE_SECONDS``) unless a
``validation_alias`` names another; an empty variable counts as unset.

- ``Settings(...)`` builds settings from arguments only (tests, benchmarks): the
  environment is not read, so a test never picks up a stray variable.
- ``Settings.from_env()`` reads the environment; a value of the wrong type raises
  ``SettingsError`` naming the variable (``LEASE_SECONDS=abc: expected an integer``).

To add a setting: one line ``name: type = default`` here (``Field(..., repr=False)`` for a
secret), and a row in the README's Configuration section.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import SoulprintError


class SettingsError(SoulprintError, ValueError):
    """A setting in the environment has a value of the wrong type; says which variable."""


def _lowered(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# Choices among names, matched case-insensitively ("OpenAI" is "openai").
_Lower = BeforeValidator(_lowered)
EmbeddingProvider = Annotated[Literal["minilm", "openai"], _Lower]
LlmProvider = Annotated[Literal["openai"], _Lower]
ChunkPolicy = Annotated[
    Literal["person", "person-plain", "turns"], _Lower
]  # pipeline/exports/chunker.py POLICIES


def default_data_dir() -> Path:
    return Path(
        os.environ.get("SOULPRINT_DATA_DIR") or platformdirs.user_data_dir("soulprint-import")
    )


def default_model_cache_dir() -> Path | None:
    """SOULPRINT_MODEL_CACHE_DIR, or None for ``<data_dir>/models``."""
    value = os.environ.get("SOULPRINT_MODEL_CACHE_DIR")
    return Path(value) if value else None


class Settings(BaseModel):
    """Everything configurable. Build with ``Settings.from_env()`` (or arguments in tests);
    immutable: derive a variant with ``settings.model_copy(update={...})``."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    # None: start the embedded PostgreSQL under data_dir (local mode).
    database_url: str | None = Field(default=None, repr=False)
    # POST /v1/search and `search` log in as import_searcher, the one role that may become a
    # person (never the worker's DATABASE_URL). Local mode: derived from the embedded server.
    search_database_url: str | None = Field(default=None, repr=False)
    data_dir: Path = Field(default_factory=default_data_dir, validation_alias="SOULPRINT_DATA_DIR")

    # Standard Webhooks secrets (whsec_...). The previous one is accepted during rotation.
    webhook_secret: str | None = Field(default=None, repr=False)
    webhook_secret_previous: str | None = Field(default=None, repr=False)
    receiver_url: str | None = None  # where the relay posts events
    # Real events are under 1 KB; every byte is held before the signature is checked, so an
    # unsigned caller must not get to park much memory here (security review finding 6).
    max_body_bytes: int = Field(default=64 * 1024, gt=0, validation_alias="MAX_WEBHOOK_BODY_BYTES")
    # A webhook body not fully sent within this many seconds is cut off (408): slow senders
    # would otherwise hold a connection and its buffer for as long as they like.
    webhook_body_timeout_seconds: float = Field(default=10.0, gt=0)
    # Connections the receiver serves at once (uvicorn limit_concurrency); past it, 503.
    receiver_max_connections: int = Field(default=64, ge=2)

    # Hosted Supabase: Storage is reached as the worker role, never as service_role.
    supabase_url: str | None = None
    supabase_anon_key: str | None = Field(default=None, repr=False)
    supabase_worker_jwt: str | None = Field(default=None, repr=False)
    # POST /v1/search verifies people's access tokens: the legacy HS256 JWT secret and/or
    # the project's JWKS (default {supabase_url}/auth/v1/.well-known/jwks.json).
    supabase_jwt_secret: str | None = Field(default=None, repr=False)
    supabase_jwks_url: str | None = None
    search_rate_per_minute: int = Field(default=30, ge=1)  # per person, per service instance
    search_max_body_bytes: int = Field(default=8192, gt=0)
    # Local mode: the "imports" bucket is a directory.
    local_bucket_dir: Path | None = Field(
        default=None, validation_alias="SOULPRINT_LOCAL_BUCKET_DIR"
    )

    # Svix mode: the relay hands events to Svix instead of posting them itself.
    svix_api_key: str | None = Field(default=None, repr=False)
    svix_app_id: str | None = None
    svix_server_url: str | None = None
    # The relay's longest wait for a receiver: a Retry-After, a backoff or a circuit
    # breaker's cool-down never holds events longer than this (seconds).
    relay_max_delay_seconds: float = Field(default=60.0, gt=0)
    # Consecutive failures of its receiver after which a relay stops claiming events (the
    # circuit opens) until a single probe after the cool-down gets through.
    relay_breaker_failures: int = Field(default=5, ge=1)

    embedding_provider: EmbeddingProvider = "minilm"
    embedding_model: str | None = None
    embedding_dimensions: int | None = Field(default=None, gt=0)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = Field(default=None, repr=False)
    embedding_concurrency: int = Field(default=4, ge=1)  # openai: requests in flight at once
    # Chunks per embedding batch, the unit any instance may claim (issue 15 fan-out);
    # rounded up to whole embedder calls (openai: 96 x EMBEDDING_CONCURRENCY; minilm: 64).
    embedding_batch_chunks: int = Field(default=500, ge=1)
    minilm_precision: Literal["int8", "float32"] = "int8"  # int8 fast; float32 ~2x the CPU
    # Where minilm keeps the ONNX graph it builds once (None: <data_dir>/models).
    model_cache_dir: Path | None = Field(default=None, validation_alias="SOULPRINT_MODEL_CACHE_DIR")

    llm_provider: LlmProvider | None = None  # None: offline soulprint
    llm_base_url: str | None = None
    llm_api_key: str | None = Field(default=None, repr=False)
    llm_model: str | None = None

    max_upload_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    max_message_chars: int = Field(default=200_000, ge=1)
    # Below ~100 characters a chunk holds less than a sentence: nothing to search by.
    chunk_target_chars: int = Field(default=1000, ge=100)
    # pipeline/exports/chunker.py POLICIES; README "Search".
    chunk_policy: ChunkPolicy = "person"
    stage_pool_size: int = Field(default=2, ge=1)
    # The stage pool pulls runnable work from import_jobs: woken by each verified event, by
    # NOTIFY on import_events (one LISTEN connection per instance; set false behind a
    # transaction pooler, which cannot hold one) and at least every WORK_POLL_SECONDS.
    listen_for_work: bool = True
    work_poll_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: int = Field(default=60, gt=0)
    # A stage that reports nothing for this long is taken as hung: its lease is let go.
    # Above the longest wait a healthy batch can have (retries of a slow embeddings API).
    stage_stall_seconds: int = Field(default=1200, gt=0)
    # Claims of one stage before the job fails (transient errors, lapsed leases).
    max_attempts: int = Field(default=5, ge=1)
    # Keep the raw export in Storage after a successful import (default: delete it).
    keep_export_after_import: bool = False
    # Peers whose X-Forwarded-For/-Proto uvicorn believes (IPs or CIDRs, comma-separated).
    # Never "*": anyone could then claim any address. Loopback only by default.
    forwarded_allow_ips: str = "127.0.0.1"
    # After a transient failure the stage is re-announced this long after the first failed
    # attempt, doubling each time (30, 60, 120, 240 s with the default MAX_ATTEMPTS).
    retry_backoff_seconds: float = Field(default=30.0, ge=0)
    # The receiver's janitor deletes export copies a dead stage left on this disk: at
    # start-up, then this often (pipeline/janitor.py).
    janitor_interval_seconds: float = Field(default=300.0, gt=0)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _no_wildcard_proxy(cls, value: str) -> str:
        """'*' would let any caller claim any client address in X-Forwarded-For."""
        if "*" in (part.strip() for part in value.split(",")):
            raise ValueError(
                "'*' trusts forwarded headers from anyone; list the proxy's "
                "addresses or CIDRs (e.g. Render's internal range) instead"
            )
        return value

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment. Raises SettingsError naming a bad variable."""
        try:
            env = _FromEnvironment()
        except ValidationError as exc:
            raise SettingsError(_describe(exc)) from None
        return cls.model_validate(dict(env))


class _FromEnvironment(BaseSettings, Settings):
    """``Settings`` whose values come from the environment (the same fields, read once)."""

    model_config = SettingsConfigDict(
        frozen=True,
        populate_by_name=True,
        extra="ignore",
        env_ignore_empty=True,
        case_sensitive=False,
    )


def env_name(field: str) -> str:
    """The environment variable of a settings field (``lease_seconds`` -> ``LEASE_SECONDS``)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    return alias if isinstance(alias, str) else field.upper()


def _field_of(loc: tuple[Any, ...]) -> str:
    name = str(loc[0]) if loc else ""
    for field, info in Settings.model_fields.items():
        if name in (field, info.validation_alias):
            return field
    return name


def _describe(exc: ValidationError) -> str:
    """One line per bad variable; the value is shown unless the setting is a secret."""
    lines = []
    for err in exc.errors(include_url=False):
        field = _field_of(tuple(err.get("loc", ())))
        info = Settings.model_fields.get(field)
        secret = info is not None and info.repr is False
        shown = "" if secret else f"={err.get('input')!s}"
        lines.append(f"{env_name(field)}{shown}: {err.get('msg', 'invalid value')}")
    return "; ".join(lines)
