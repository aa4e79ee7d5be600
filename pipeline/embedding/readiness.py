"""Is the offline model's graph already built? For `doctor`, `serve` and `run`, which
must know before an import pays for the build (~440 MB and a few seconds, once).

    state = graph_state(settings)     # None when EMBEDDING_PROVIDER is not minilm
    if state is not None and not state.ready:
        print(f"no {state.precision} graph in {state.cache_dir}")

Only reads: hashes the weights (~0.2 s) and the cached graph (~0.1 s), builds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..settings import Settings
from .errors import EmbedderUnavailable

BUILD_COMMAND = "soulprint-import models build"


@dataclass(frozen=True, slots=True)
class GraphState:
    """``ready``: the graph for ``precision`` is in ``cache_dir`` and matches its sha256.
    ``problem``: why the model cannot be used at all (package missing), else None."""

    precision: str
    cache_dir: Path
    ready: bool
    problem: str | None = None


def graph_state(settings: Settings) -> GraphState | None:
    """The minilm graph's state under ``settings``; None for another provider."""
    if (settings.embedding_provider or "minilm").strip().lower() != "minilm":
        return None
    from .minilm import find_model_dir
    from .onnx_cache import graph_path, is_prebuilt

    precision = (settings.minilm_precision or "int8").strip().lower()
    cache_dir = settings.model_cache_dir or settings.data_dir / "models"
    try:
        model_dir = find_model_dir()
        path = graph_path(model_dir, cache_dir, precision)
    except (EmbedderUnavailable, OSError) as exc:
        return GraphState(precision, cache_dir, False, str(exc))
    return GraphState(precision, cache_dir, is_prebuilt(path))


def missing_graph_warning(settings: Settings) -> str | None:
    """One operator line when the first import would have to build the graph (minilm, no
    intact graph for the configured precision), else None. For ``serve`` at start-up."""
    state = graph_state(settings)
    if state is None or state.ready or state.problem:
        # A missing package fails loudly on first use with its install command.
        return None
    return (
        f"no prebuilt MiniLM {state.precision} graph in {state.cache_dir}: the first import "
        f"will build it (~440 MB for a few seconds, beside the worker's own memory; a 512 MB "
        f"instance may not have it). Run `{BUILD_COMMAND}` in the build step with the same "
        "SOULPRINT_MODEL_CACHE_DIR and MINILM_PRECISION."
    )
