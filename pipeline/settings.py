"""Settings from the environment; secrets are read here and nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def default_data_dir() -> Path:
    return Path(_env("SOULPRINT_DATA_DIR") or platformdirs.user_data_dir("soulprint-import"))


def default_model_cache_dir() -> Path | None:
    """SOULPRINT_MODEL_CACHE_DIR, or None for ``<data_dir>/models``."""
    value = _env("SOULPRINT_MODEL_CACHE_DIR")
    return Path(value) if value else None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable. Build with ``Settings.from_env()``."""

    # None: start the embedded PostgreSQL under data_dir (local mode).
    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)

    # Standard Webhooks secrets (whsec_...). The previous one is accepted during rotation.
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_secret_previous: str | None = field(default=None, repr=False)
    receiver_url: str | None = None  # where the relay posts events
    max_body_bytes: int = 1024 * 1024

    # Hosted Supabase: Storage is reached as the worker role, never as service_role.
    supabase_url: str | None = None
    supabase_anon_key: str | None = field(default=None, repr=False)
    supabase_worker_jwt: str | None = field(default=None, repr=False)
    # Local mode: the "imports" bucket is a directory.
    local_bucket_dir: Path | None = None

    # Svix mode: the relay hands events to Svix instead of posting them itself.
    svix_api_key: str | None = field(default=None, repr=False)
    svix_app_id: str | None = None
    svix_server_url: str | None = None

    embedding_provider: str = "minilm"  # minilm | openai
    embedding_model: str | None = None
    embedding_dimensions: int | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = field(default=None, repr=False)
    embedding_concurrency: int = 4  # openai: requests in flight at once
    minilm_precision: str = "int8"  # minilm: int8 (fast) | float32 (exact, ~2x the CPU)
    # Where minilm keeps the ONNX graph it builds once (None: <data_dir>/models).
    model_cache_dir: Path | None = field(default_factory=default_model_cache_dir)

    llm_provider: str | None = None  # None (offline soulprint) | openai
    llm_base_url: str | None = None
    llm_api_key: str | None = field(default=None, repr=False)
    llm_model: str | None = None

    max_upload_bytes: int = 1024 * 1024 * 1024
    max_message_chars: int = 200_000
    chunk_target_chars: int = 1000
    stage_pool_size: int = 2
    lease_seconds: int = 60
    # A stage that reports nothing for this long is taken as hung: its lease is let go.
    # Above the longest wait a healthy batch can have (retries of a slow embeddings API).
    stage_stall_seconds: int = 1200
    max_attempts: int = 5

    @classmethod
    def from_env(cls) -> Settings:
        bucket = _env("SOULPRINT_LOCAL_BUCKET_DIR")
        dims = _env("EMBEDDING_DIMENSIONS")
        return cls(
            database_url=_env("DATABASE_URL"),
            data_dir=default_data_dir(),
            webhook_secret=_env("WEBHOOK_SECRET"),
            webhook_secret_previous=_env("WEBHOOK_SECRET_PREVIOUS"),
            receiver_url=_env("RECEIVER_URL"),
            max_body_bytes=int(_env("MAX_WEBHOOK_BODY_BYTES", str(1024 * 1024))),
            supabase_url=_env("SUPABASE_URL"),
            supabase_anon_key=_env("SUPABASE_ANON_KEY"),
            supabase_worker_jwt=_env("SUPABASE_WORKER_JWT"),
            local_bucket_dir=Path(bucket) if bucket else None,
            svix_api_key=_env("SVIX_API_KEY"),
            svix_app_id=_env("SVIX_APP_ID"),
            svix_server_url=_env("SVIX_SERVER_URL"),
            embedding_provider=_env("EMBEDDING_PROVIDER", "minilm") or "minilm",
            embedding_model=_env("EMBEDDING_MODEL"),
            embedding_dimensions=int(dims) if dims else None,
            openai_base_url=_env("OPENAI_BASE_URL", "https://api.openai.com/v1") or "",
            openai_api_key=_env("OPENAI_API_KEY"),
            embedding_concurrency=int(_env("EMBEDDING_CONCURRENCY", "4")),
            minilm_precision=_env("MINILM_PRECISION", "int8") or "int8",
            model_cache_dir=default_model_cache_dir(),
            llm_provider=_env("LLM_PROVIDER"),
            llm_base_url=_env("LLM_BASE_URL"),
            llm_api_key=_env("LLM_API_KEY"),
            llm_model=_env("LLM_MODEL"),
            max_upload_bytes=int(_env("MAX_UPLOAD_BYTES", str(1024**3))),
            max_message_chars=int(_env("MAX_MESSAGE_CHARS", "200000")),
            chunk_target_chars=int(_env("CHUNK_TARGET_CHARS", "1000")),
            stage_pool_size=int(_env("STAGE_POOL_SIZE", "2")),
            lease_seconds=int(_env("LEASE_SECONDS", "60")),
            stage_stall_seconds=int(_env("STAGE_STALL_SECONDS", "1200")),
            max_attempts=int(_env("MAX_ATTEMPTS", "5")),
        )
