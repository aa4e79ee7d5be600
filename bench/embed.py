"""Embedding throughput benchmark: ONNX Runtime int8 (and float32) vs the former numpy
forward pass, in one run: texts/s, CPU ms per text and peak RSS, each variant in a fresh
process, alternated A B A B so that other load on the machine hits every variant alike.

    python bench/embed.py                         # 2 rounds x (numpy, int8, float32), 128 texts
    python bench/embed.py --one-core              # the same pinned to CPU 0 (taskset -c 0)
    python bench/embed.py --variants numpy,int8 --rounds 3 --texts 256
    python bench/embed.py --provider openai --fake   # client overhead, loopback fake API

Texts are synthetic but chat-like (~1000 chars, the chunker's target size), so the
number predicts the embedding stage: a 100 MB export is roughly 100k such chunks.
Ratios are per round (int8 over numpy measured back to back), then the median.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    """This process's peak RSS (VmHWM; ru_maxrss would count the parent's pages too)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024


def _embedder(variant: str, threads: int):
    """(embedder, description) for one variant; loading happens here, untimed."""
    if variant == "numpy":
        from threadpoolctl import threadpool_info

        from bench.numpy_bert import NumpyMiniLM
        from pipeline.embedding.minilm import find_model_dir

        emb = NumpyMiniLM(find_model_dir(), threads=threads)
        blas = [
            f"{i.get('internal_api')} {i.get('architecture')} x{i.get('num_threads')}"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
        return emb, f"numpy float32, packed batches, BLAS {', '.join(blas) or '?'}"
    if variant in ("int8", "float32"):
        from pipeline.embedding.minilm import MiniLMEmbedder

        emb = MiniLMEmbedder(precision=variant, threads=threads)
        emb.warm_up()
        return emb, f"onnxruntime {variant}, one text per run"
    if variant in ("openai", "openai-fake"):
        from pipeline.embedding.openai_embedder import OpenAIEmbedder
        from pipeline.settings import Settings

        settings = Settings.from_env()
        if variant == "openai-fake":
            from tests.fake_openai import fake_openai

            srv = _STACK.enter_context(fake_openai())
            settings = settings.model_copy(
                update={"openai_base_url": srv.base_url, "openai_api_key": srv.api_key}
            )
        return OpenAIEmbedder.from_settings(settings), "batches of 96 texts per request"
    raise SystemExit(f"unknown variant {variant}")


_STACK = contextlib.ExitStack()


def child(variant: str, n: int, chars: int, threads: int, call_size: int) -> dict:
    """Measure one variant in this process; returns the numbers as a dict."""
    texts = make_texts(n, chars)
    t0 = time.perf_counter()
    with _STACK:
        emb, desc = _embedder(variant, threads)
        load_s = time.perf_counter() - t0
        emb.embed(texts[:8])  # first-call costs (threads, allocator) out of the timing
        t0, cpu0 = time.perf_counter(), time.process_time()
        for start in range(0, n, call_size):
            emb.embed(texts[start : start + call_size])
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "variant": variant,
        "desc": desc,
        "texts_per_s": n / wall,
        "cpu_ms_per_text": 1000 * cpu / n,
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
        "load_avg": os.getloadavg()[0],
    }


def run_child(args: argparse.Namespace, variant: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--texts",
        str(args.texts),
        "--chars",
        str(args.chars),
        "--threads",
        str(args.threads),
        "--call-size",
        str(args.call_size),
    ]
    if args.one_core:
        if not shutil.which("taskset"):
            raise SystemExit("--one-core needs taskset (util-linux)")
        cmd = ["taskset", "-c", "0", *cmd]
    # OpenBLAS tuning variables slow a current numpy (see the env notes): unset for the
    # baseline's sake, in the child only.
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"{variant} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants",
        default="numpy,int8,float32",
        help="comma-separated: numpy, int8, float32, openai, openai-fake",
    )
    parser.add_argument(
        "--provider",
        choices=["minilm", "openai"],
        default="minilm",
        help="openai: same as --variants openai (or openai-fake with --fake)",
    )
    parser.add_argument("--fake", action="store_true", help="openai: tests/fake_openai.py")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--chars", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None, help="worker threads")
    parser.add_argument("--call-size", type=int, default=64, help="texts per embed() call")
    parser.add_argument("--one-core", action="store_true", help="pin to CPU 0, one thread")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is None:
        args.threads = 1 if args.one_core else min(os.cpu_count() or 1, 4)
    if args.child:
        result = child(args.child, args.texts, args.chars, args.threads, args.call_size)
        print(json.dumps(result))
        return
    variants = args.variants.split(",")
    if args.provider == "openai":
        variants = ["openai-fake" if args.fake else "openai"]

    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]  # A B, then B A
        for v in order:
            res = run_child(args, v)
            results[v].append(res)
            print(
                f"round {r + 1} {v:<8} {res['texts_per_s']:6.1f} texts/s  "
                f"{res['cpu_ms_per_text']:6.1f} ms CPU/text  peak RSS "
                f"{res['peak_rss_mb']:4.0f} MB  load {res['load_s']:.1f} s  "
                f"(load average {res['load_avg']:.1f})",
                flush=True,
            )
    where = "one core (taskset -c 0)" if args.one_core else f"{os.cpu_count()} CPUs"
    print(f"\n{args.texts} texts of ~{args.chars} chars, {args.threads} worker threads, {where}")
    for v in variants:
        rs = results[v]
        print(
            f"  {v:<8} median {statistics.median(x['texts_per_s'] for x in rs):6.1f} "
            f"texts/s, {statistics.median(x['cpu_ms_per_text'] for x in rs):6.1f} ms "
            f"CPU/text, peak RSS {max(x['peak_rss_mb'] for x in rs):.0f} MB  [{rs[0]['desc']}]"
        )
    if "numpy" in results:
        base = results["numpy"]
        for v in variants:
            if v == "numpy":
                continue
            speed = [
                a["texts_per_s"] / b["texts_per_s"] for a, b in zip(results[v], base, strict=True)
            ]
            cpu = [
                a["cpu_ms_per_text"] / b["cpu_ms_per_text"]
                for a, b in zip(results[v], base, strict=True)
            ]
            print(
                f"  {v} / numpy: texts/s x{statistics.median(speed):.2f} "
                f"(rounds {', '.join(f'{s:.2f}' for s in speed)}); CPU per text "
                f"x{statistics.median(cpu):.2f}"
            )


if __name__ == "__main__":
    main()
