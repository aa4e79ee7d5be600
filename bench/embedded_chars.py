"""Characters embedded per export under each chunk policy (issue 13 item 3), no database.

    python bench/embedded_chars.py [--size-mb 100]

Reads the synthetic export `bench/e2e.py` imports (built once into bench/.cache) and cuts
every conversation with each policy, as the parsing stage does. The embedder's cost is
about proportional to the characters it reads (each chunk is tokenized and run on its
own), so this ratio is the chunk policy's share of the embedding stage's gain, separate
from the runtime's (ONNX int8 vs numpy: `bench/embed.py`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import CACHE, make_export  # noqa: E402
from pipeline.exports.chunker import chunk_conversation  # noqa: E402
from pipeline.exports.reader import ExportReader  # noqa: E402

POLICIES = ("turns", "person")  # before issue 13, and now (the default)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100, help="export size (MB)")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    export = make_export(CACHE / f"e2e-{args.size_mb}mb.json", args.size_mb)
    chunks = dict.fromkeys(POLICIES, 0)
    chars = dict.fromkeys(POLICIES, 0)
    start = time.perf_counter()
    for conv in ExportReader(export):
        for policy in POLICIES:
            for chunk in chunk_conversation(conv, policy=policy):
                chunks[policy] += 1
                chars[policy] += len(chunk.text)
    size_mb = export.stat().st_size / 1e6
    print(f"export: {size_mb:,.1f} MB ({time.perf_counter() - start:.1f} s)")
    for policy in POLICIES:
        print(
            f"{policy:>7}: {chunks[policy]:,} chunks, {chars[policy]:,} characters embedded "
            f"({chars[policy] / size_mb * 100 / 1e6:.1f} M characters per 100 MB)"
        )
    print(
        f"person/turns: chunks x{chunks['person'] / chunks['turns']:.2f}, "
        f"characters x{chars['person'] / chars['turns']:.2f}"
    )


if __name__ == "__main__":
    main()
