"""Time `soulprint-import db up`: fresh (initdb + start + migrate) and warm (already running).

    python bench/db_up.py [--runs N]

Each fresh run uses a new temp data dir; the server is stopped and removed afterwards.
Prints one line per measurement and a summary; the issue's budget is < 10 s fresh and
< 1 s warm, measured as a user would: a new process running the CLI.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _db(action: str, data_dir: Path) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "db", action, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, out.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    fresh, warm = [], []
    for i in range(args.runs):
        data_dir = Path(tempfile.mkdtemp(prefix="soulprint-bench-"))
        data_dir.chmod(0o755)
        try:
            t, url = _db("up", data_dir)
            fresh.append(t)
            assert url.count("\n") == 1 and url.startswith("postgresql://"), url
            for _ in range(3):
                warm.append(_db("up", data_dir)[0])
            warm_s = ", ".join(f"{w:.2f}" for w in warm[-3:])
            print(f"run {i + 1}: fresh {t:.2f} s, warm {warm_s} s")
        finally:
            _db("down", data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"fresh: median {statistics.median(fresh):.2f} s, max {max(fresh):.2f} s (budget 10 s)")
    print(f"warm:  median {statistics.median(warm):.2f} s, max {max(warm):.2f} s (budget 1 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
