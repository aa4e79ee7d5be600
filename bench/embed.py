"""Embedding throughput benchmark: texts/s, ms per batch and peak RSS.

    python bench/embed.py                       # minilm, 512 texts of ~1000 chars
    python bench/embed.py --texts 2048 --batch-size 64
    python bench/embed.py --provider openai     # uses OPENAI_* settings from the environment
    python bench/embed.py --provider openai --fake   # client overhead, against the loopback fake

Texts are synthetic but chat-like (~1000 chars, the chunker's target size), so the
number predicts the embedding stage: a 100 MB export is roughly 100k such chunks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.embedding.minilm import MiniLMEmbedder
from pipeline.embedding.openai_embedder import OpenAIEmbedder
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


def _minilm(args: argparse.Namespace, texts: list[str]) -> tuple[MiniLMEmbedder, int, str]:
    embedder = MiniLMEmbedder(
        batch_size=args.batch_size, batch_tokens=args.batch_tokens, threads=args.threads
    )
    t0 = time.perf_counter()
    embedder.warm_up()
    print(f"load: {time.perf_counter() - t0:.2f} s, peak RSS {peak_rss_mb():.0f} MB")
    _, tok = embedder._load()
    lengths = [len(e.ids) for e in tok.encode_batch(texts)]  # truncated, as embedded
    batches = sum(
        len(embedder._batches(lengths[i : i + args.call_size]))
        for i in range(0, len(texts), args.call_size)
    )
    config = (
        f"batches of <= {args.batch_size} texts / {args.batch_tokens} tokens, packed "
        f"(mean {sum(lengths) / len(lengths):.0f} tokens/text after truncation), "
        f"{embedder.threads} worker threads"
    )
    return embedder, batches, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default="minilm", choices=["minilm", "openai"])
    parser.add_argument("--fake", action="store_true", help="openai: use tests/fake_openai.py")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--chars", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=None, help="max texts per batch")
    parser.add_argument("--batch-tokens", type=int, default=512, help="minilm: tokens/batch")
    parser.add_argument("--threads", type=int, default=None, help="minilm: worker threads")
    parser.add_argument("--call-size", type=int, default=256, help="texts per embed() call")
    args = parser.parse_args()
    args.batch_size = args.batch_size or (64 if args.provider == "minilm" else 96)

    texts = make_texts(args.texts, args.chars)
    rss_before = peak_rss_mb()
    with contextlib.ExitStack() as stack:
        if args.provider == "minilm":
            embedder, batches, config = _minilm(args, texts)
        else:
            settings = Settings.from_env()
            if args.fake:
                from tests.fake_openai import fake_openai

                srv = stack.enter_context(fake_openai())
                settings = settings.model_copy(
                    update={"openai_base_url": srv.base_url, "openai_api_key": srv.api_key})
            embedder = OpenAIEmbedder.from_settings(settings, batch_size=args.batch_size)
            batches = -(-len(texts) // args.batch_size)
            config = f"batches of {args.batch_size} texts, one HTTP request each"
        embedder.embed(texts[:8])  # first-call costs (threads, allocator) out of the timing

        t0 = time.perf_counter()
        cpu0 = time.process_time()
        done = 0
        for start in range(0, len(texts), args.call_size):
            done += len(embedder.embed(texts[start : start + args.call_size]))
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    print(f"{args.provider}: {config}")
    print(
        f"  {done} texts of ~{args.chars} chars in {elapsed:.2f} s = {done / elapsed:.1f} "
        f"texts/s; {1000 * elapsed / batches:.0f} ms per batch ({batches} batches); "
        f"CPU {cpu:.1f} s ({1000 * cpu / done:.0f} ms/text)"
    )
    print(
        f"  peak RSS {peak_rss_mb():.0f} MB (interpreter + imports {rss_before:.0f} MB); "
        f"load average during run {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
