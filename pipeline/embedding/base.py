"""The ``Embedder`` contract shared by every provider."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors, so cosine similarity is a plain dot product.

    Implementations are safe to call from several worker threads at once.
    """

    @property
    def model(self) -> str:
        """Model name stored with each vector (``memory_chunks.embedding_model``)."""
        ...

    @property
    def dimensions(self) -> int:
        """Vector length (``memory_chunks.embedding_dim``)."""
        ...

    @property
    def stage_batch_size(self) -> int:
        """Chunks the embedding stage hands over per call: enough to keep this embedder
        busy, few enough that a cancel or SIGTERM is obeyed within seconds."""
        ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return a float32 array of shape ``(len(texts), dimensions)``, rows L2-normalized."""
        ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Scale rows to unit length in place (float32); all-zero rows stay zero instead of NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    vectors /= norms
    return vectors
