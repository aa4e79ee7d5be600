"""`soulprint-import models build`: build the offline MiniLM graph now, not on the first import.

Meant for a deployment's build step (render.yaml): the one-time build needs ~440 MB for a
few seconds, which a 512 MB instance should not have to find in the middle of an import,
and every later process then only loads the cached file.
"""

from __future__ import annotations

import argparse
import sys
import time

from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="prepare the offline embedding model")
    p.add_argument("action", choices=["build"], help="build (or check) the cached ONNX graph")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.embedding import EmbedderError, get_embedder
    from pipeline.embedding.minilm import MiniLMEmbedder

    settings = Settings.from_env()
    start = time.perf_counter()
    try:
        embedder = get_embedder(settings)
        if not isinstance(embedder, MiniLMEmbedder):
            print(f"EMBEDDING_PROVIDER={settings.embedding_provider}: no local model to build.")
            return 0
        embedder.warm_up()
    except EmbedderError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"{embedder.model} ready ({time.perf_counter() - start:.1f} s).")
    return 0
