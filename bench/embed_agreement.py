"""Does int8 find the same memories as float32? A retrieval check for MINILM_PRECISION.

float32 reproduces sentence-transformers (cosine >= 0.9999), so it stands in for the
reference. Over the chunks of a synthetic export (bench/e2e.py's generator), it measures:
  - recall@1 / @5 of the source chunk for a query cut from its middle (12 words), per
    precision: what a person searching for something they remember would get;
  - overlap@10 of each chunk's nearest neighbours under int8 vs float32.

    python bench/embed_agreement.py [--chunks 600] [--queries 200]

This is not the search issue's retrieval bench (bench/retrieval.py, hybrid vector +
lexical over the real schema); it isolates what the embedding precision alone changes.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import CACHE, make_export, sample_chunk_texts  # noqa: E402
from pipeline.embedding.minilm import MiniLMEmbedder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=600)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    export = make_export(CACHE / "e2e-10mb.json", 10)
    docs = sample_chunk_texts(export, args.chunks)
    rng = random.Random(3)
    picked = rng.sample(range(len(docs)), min(args.queries, len(docs)))
    queries = []
    for i in picked:
        words = docs[i].split()
        start = rng.randrange(0, max(1, len(words) - 12))
        queries.append(" ".join(words[start : start + 12]))

    vectors = {}
    for precision in ("float32", "int8"):
        emb = MiniLMEmbedder(precision=precision)
        t0 = time.perf_counter()
        vectors[precision] = (emb.embed(docs), emb.embed(queries))
        print(f"{precision}: {len(docs) + len(queries)} texts in {time.perf_counter() - t0:.1f} s")

    print(f"{len(docs)} chunks, {len(queries)} queries of 12 words cut from a chunk")
    for precision, (d, q) in vectors.items():
        scores = q @ d.T
        target = scores[np.arange(len(picked)), picked][:, None]
        rank = (scores > target).sum(axis=1)  # 0 = the source chunk ranks first
        print(
            f"  {precision:<8} recall@1 {np.mean(rank < 1):.3f}  recall@5 {np.mean(rank < 5):.3f}"
        )
    (d32, _), (d8, _) = vectors["float32"], vectors["int8"]
    cos = np.sum(d32 * d8, axis=1)
    print(f"  int8 vs float32 cosine per chunk: min {cos.min():.4f}, mean {cos.mean():.4f}")
    top32 = np.argsort(-(d32 @ d32.T), axis=1)[:, 1:11]
    top8 = np.argsort(-(d8 @ d8.T), axis=1)[:, 1:11]
    overlap = [len(set(a) & set(b)) / 10 for a, b in zip(top32, top8, strict=True)]
    print(f"  nearest-10 neighbours shared by int8 and float32: {np.mean(overlap):.3f}")


if __name__ == "__main__":
    main()
