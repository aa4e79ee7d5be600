"""Which recorded embedding models make vectors that can be compared with each other.

    comparable("all-MiniLM-L6-v2/onnx-int8-b2", 384,
               "sentence-transformers/all-MiniLM-L6-v2", 384)      # True
    model_family("all-MiniLM-L6-v2/onnx-float32")                 # "all-MiniLM-L6-v2"

The one place that decides whether a question embedded by the configured embedder can be
searched against an import's vectors (the ``search`` CLI, ``POST /v1/search``, the
retrieval benchmark). all-MiniLM-L6-v2 is one family however it ran: imports made before
the ONNX switch recorded ``sentence-transformers/all-MiniLM-L6-v2``, later ones
``all-MiniLM-L6-v2/onnx-int8`` or ``/onnx-float32``, and from the review of issue 13 on
with the graph builder's version (``/onnx-int8-b2``; cosine >= 0.99 between them all). Other
models (OpenAI's) only match by exact name and dimension: ``text-embedding-3-small`` cut to
256 dimensions is a different space from its 1536-dimension vectors.
"""

from __future__ import annotations

MINILM_FAMILY = "all-MiniLM-L6-v2"


def model_family(model: str) -> str:
    """The family of a recorded model name: MiniLM's base name for any MiniLM spelling
    (case-insensitive), otherwise the name itself."""
    parts = [p.lower() for p in model.strip().split("/")]
    if MINILM_FAMILY.lower() in parts:
        return MINILM_FAMILY
    return model.strip()


def comparable(model_a: str, dim_a: int | None, model_b: str, dim_b: int | None) -> bool:
    """True when vectors of model ``a`` and ``b`` live in one space: same family, same
    dimension count."""
    return dim_a == dim_b and model_family(model_a) == model_family(model_b)


def setting_hint(import_model: str, import_dim: int | None) -> str:
    """The settings that make the configured embedder match ``import_model`` (a sentence)."""
    if model_family(import_model) == MINILM_FAMILY:
        return (
            "set EMBEDDING_PROVIDER=minilm (any MINILM_PRECISION works) and unset "
            "EMBEDDING_MODEL / EMBEDDING_DIMENSIONS to search it"
        )
    dims = f" and EMBEDDING_DIMENSIONS={import_dim}" if import_dim else ""
    return f"set EMBEDDING_PROVIDER=openai, EMBEDDING_MODEL={import_model}{dims} to search it"
