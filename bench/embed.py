"""Embedding throughput benchmark: texts/s, ms per batch and peak RSS.

    python bench/embed.py                       # minilm, 512 texts of ~1000 chars
    python bench/embed.py --texts 2048 --batch-size 64
    python bench/embed.py --provider openai     # uses OPENAI_* settings from the environment

Texts are synthetic but chat-like (~1000 chars, the chunker's target size), so the
number predicts the embedding stage: a 100 MB export is roughly 100k such chunks.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.embedding import get_embedder
from pipeline.embedding.minilm import MiniLMEmbedder
from pipeline.settings import Settings

_ROOT = Path(__file__).resolve().parents[1]


def make_texts(n: int, chars: int, seed: int = 7) -> list[str]:
    """Deterministic ~``chars``-character windows (+-30%) of the repo's own prose.

    Real English with identifiers in it tokenizes like chat text does (about 4 chars a
    token), unlike random words from a small vocabulary, which would flatter the numbers.
    """
    sources = sorted([_ROOT / "README.md", *_ROOT.glob("docs/*.md")])
    corpus = " ".join(p.read_text(encoding="utf-8") for p in sources)
    corpus = " ".join(corpus.split())
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        size = min(len(corpus), int(chars * rng.uniform(0.7, 1.3)))
        start = rng.randrange(0, len(corpus) - size + 1)
        texts.append(corpus[start : start + size])
    return texts


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default="minilm", choices=["minilm", "openai"])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--chars", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64, help="max texts per batch")
    parser.add_argument("--batch-tokens", type=int, default=512, help="max tokens per batch")
    parser.add_argument("--threads", type=int, default=None, help="minilm workers")
    parser.add_argument("--call-size", type=int, default=256, help="texts per embed() call")
    args = parser.parse_args()

    texts = make_texts(args.texts, args.chars)
    if args.provider == "minilm":
        from tokenizers import Tokenizer

        from pipeline.embedding.minilm import find_model_dir

        tok = Tokenizer.from_file(str(find_model_dir() / "tokenizer.json"))
        tok.no_truncation()
        counts = [len(e.ids) for e in tok.encode_batch(texts)]
        print(f"tokens per text: mean {sum(counts) / len(counts):.0f}, max {max(counts)}")
    rss_before = peak_rss_mb()
    if args.provider == "minilm":
        embedder = MiniLMEmbedder(
            batch_size=args.batch_size, batch_tokens=args.batch_tokens, threads=args.threads
        )
        t0 = time.perf_counter()
        embedder.warm_up()
        print(f"load: {time.perf_counter() - t0:.2f} s, peak RSS {peak_rss_mb():.0f} MB")
    else:
        embedder = get_embedder(replace(Settings.from_env(), embedding_provider="openai"))
    embedder.embed(texts[:8])  # first-call costs (BLAS threads, allocator) out of the timing

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    done = 0
    for start in range(0, len(texts), args.call_size):
        done += len(embedder.embed(texts[start : start + args.call_size]))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    batches = -(-len(texts) // args.batch_size)
    print(
        f"{args.provider}: {done} texts of ~{args.chars} chars in {elapsed:.2f} s = "
        f"{done / elapsed:.1f} texts/s; batch size {args.batch_size}, "
        f"{1000 * elapsed / batches:.0f} ms per batch; CPU {cpu:.1f} s; "
        f"peak RSS {peak_rss_mb():.0f} MB (interpreter + imports {rss_before:.0f} MB)"
    )


if __name__ == "__main__":
    main()
