"""Reader + chunker against whole-file JSON loading: wall time and peak RSS.

Usage: ``python bench/parse.py [--sizes 200,1000] [--variants ...] [--repeat N]``

Makes (once, cached in bench/.cache/) one-line minified synthetic exports of the given
sizes in MB, then measures each variant in a fresh process, one at a time:

- ``reader``: ExportReader + chunk_conversation over the whole file (what `parse` does)
- ``orjson``: ``orjson.loads`` of the whole file
- ``json``: ``json.load``
- ``ijson``: bare ``ijson.items(f, "item")`` (yajl2_c), objects built and dropped

Each child times its own work (imports excluded), wall and CPU (CPU time is the steadier
figure on a shared machine), and reports its peak RSS (``ru_maxrss``). Prints the
figures and the ratios the issue asks about.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
VARIANTS = ("reader", "orjson", "json", "ijson")


def generate(path: Path, target_bytes: int, seed: int = 7) -> None:
    """A one-line export of about ``target_bytes`` (realistic mix of eras and sizes)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import orjson
    from export_factory import ERAS, make_conversation

    rng = random.Random(seed)
    tmp = path.with_suffix(".part")
    written = 0
    index = 0
    with tmp.open("wb") as f:
        f.write(b"[")
        while written < target_bytes:
            conv = make_conversation(
                rng.randint(2, 40),
                era=ERAS[index % len(ERAS)],
                index=index,
                custom_instructions=index % 5 == 0,
                user_chars=rng.randint(40, 600),
                assistant_chars=rng.randint(200, 3000),
            )
            data = orjson.dumps(conv)
            if index:
                f.write(b",")
            f.write(data)
            written += len(data) + 1
            index += 1
        f.write(b"]")
    tmp.rename(path)


def cached_export(size_mb: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"export-{size_mb}mb.json"
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        generate(path, size_mb * 1_000_000)
        print(f"  done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return path


def child(variant: str, path: Path) -> None:
    """Run one variant in this (fresh) process and print a JSON line of figures."""
    sys.path.insert(0, str(ROOT))
    import ijson
    import orjson

    from pipeline.exports.chunker import chunk_conversation
    from pipeline.exports.reader import ExportReader

    start, cpu_start = time.perf_counter(), time.process_time()
    if variant == "reader":
        reader = ExportReader(path)
        chunks = sum(len(chunk_conversation(c)) for c in reader)
        result = {
            "conversations": reader.stats.conversations,
            "messages": reader.stats.messages,
            "chunks": chunks,
        }
    elif variant == "orjson":
        with path.open("rb") as f:
            result = {"conversations": len(orjson.loads(f.read()))}
    elif variant == "json":
        with path.open("rb") as f:
            result = {"conversations": len(json.load(f))}
    elif variant == "ijson":
        with path.open("rb") as f:
            result = {"conversations": sum(1 for _ in ijson.items(f, "item", use_float=True))}
    else:
        raise SystemExit(f"unknown variant {variant}")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_kb / 1024, **result}
        )
    )
    sys.stdout.flush()
    os._exit(0)  # skip freeing a gigabyte of objects: not part of the measured work


def measure(variant: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000", help="export sizes in MB")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per variant; the fastest is kept (a shared machine is noisy)",
    )
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = args.variants.split(",")
    results: dict[tuple[int, str], dict[str, float]] = {}
    for size in sizes:
        path = cached_export(size)
        real_mb = path.stat().st_size / 1e6
        for variant in variants:
            runs = [measure(variant, path) for _ in range(max(1, args.repeat))]
            r = min(runs, key=lambda run: run["seconds"])
            results[size, variant] = r
            counts = ", ".join(
                f"{k}={v}"
                for k, v in r.items()
                if k not in ("seconds", "cpu_seconds", "peak_rss_mb")
            )
            print(
                f"{real_mb:8.0f} MB  {variant:7s} {r['seconds']:7.2f} s wall "
                f"{r['cpu_seconds']:7.2f} s cpu  "
                f"peak RSS {r['peak_rss_mb']:7.0f} MB  ({counts})",
                flush=True,
            )
    print()
    for size in sizes:
        reader, fast = results.get((size, "reader")), results.get((size, "orjson"))
        if reader and fast:
            print(
                f"{size} MB: reader+chunker / orjson.loads: wall "
                f"{reader['seconds'] / fast['seconds']:.2f}, cpu "
                f"{reader['cpu_seconds'] / fast['cpu_seconds']:.2f}  (target <= 1.00); "
                f"reader peak RSS {reader['peak_rss_mb']:.0f} MB (target <= 150)"
            )
    if len(sizes) > 1 and all((s, "reader") in results for s in sizes):
        small, big = results[sizes[0], "reader"], results[sizes[-1], "reader"]
        print(
            f"reader peak RSS {sizes[-1]} MB / {sizes[0]} MB = "
            f"{big['peak_rss_mb'] / small['peak_rss_mb']:.2f}  (target: flat, ~1.00)"
        )


if __name__ == "__main__":
    main()
