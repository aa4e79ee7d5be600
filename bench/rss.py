"""Where the memory of `soulprint-import run` goes: peak RSS of the worker process per stage.

A sampler in this process reads the child's resident set (/proc/<pid>/status VmRSS) every
``--interval`` seconds and the job's stage from the database, then prints, per stage, its
wall seconds and the highest RSS seen while the job was in it, plus the worker's own
high-water mark (VmHWM, as last sampled before it exits). Only the worker process is counted:
PostgreSQL runs apart (its own processes, as on Supabase), and `wait4`'s ru_maxrss is
printed beside it because it also folds in the peaks of children the worker waited for.

    python bench/rss.py --size-mb 20                       # MiniLM int8, both cores
    python bench/rss.py --size-mb 20 --cpus 0              # pinned to one core (taskset)
    python bench/rss.py --size-mb 20 --embedder standin    # no model: the rest of the run
    python bench/rss.py --size-mb 20 --env MALLOC_ARENA_MAX=8   # try a setting
    python bench/rss.py --size-mb 10 --cold                # the run builds the graph itself
    python bench/rss.py --size-mb 100 --stop-after-embedded 2000   # Ctrl-C the run there

RSS is flat through the embedding stage after its first batch, so `--stop-after-embedded`
gives the peak of a large export in minutes on a loaded machine (the output says the
stage is partial). The CPU seconds are the worker's and its waited-for children's.

The graph is built (`models build`, once, in its own process) before the measured run, as a
deployment does; the database is started first, so the run measures the import alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e import CACHE, make_export, stage_seconds  # noqa: E402

# The job of this run: there is only one person and one import in a fresh data directory.
CURRENT_STAGE = (
    "select stage::text, embedded_chunks from public.import_jobs order by created_at desc limit 1"
)


def _status_kb(pid: int, field: str) -> int | None:
    """One kB field of /proc/<pid>/status (VmRSS, VmHWM); None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


class Sampler(threading.Thread):
    """Peak RSS (MB) of ``pid`` per job stage, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, admin_url: str, interval: float, stop_after: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.admin_url, self.interval = pid, admin_url, interval
        self.stop_after = stop_after
        self.interrupted_at: int | None = None
        self.peaks: dict[str, float] = {}
        self.trace: list[tuple[str, float]] = []  # (stage, RSS MB) per sample
        self.hwm_mb = 0.0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self.stop.is_set():
                rss = _status_kb(self.pid, "VmRSS")
                hwm = _status_kb(self.pid, "VmHWM")
                if rss is None:
                    return
                row = conn.execute(CURRENT_STAGE).fetchone()
                stage = row[0] if row else "(before upload)"
                if (
                    self.stop_after
                    and row
                    and row[1] >= self.stop_after
                    and not self.interrupted_at
                ):
                    # Ctrl-C, as a person would: the stage commits its batch and stops.
                    os.kill(self.pid, signal.SIGINT)
                    self.interrupted_at = row[1]
                self.peaks[stage] = max(self.peaks.get(stage, 0.0), rss / 1024)
                self.trace.append((stage, rss / 1024))
                self.hwm_mb = max(self.hwm_mb, (hwm or 0) / 1024)
                self.samples += 1
                time.sleep(self.interval)


def _job_summary(admin_url: str) -> dict[str, object]:
    """What `run --json` prints, read from the job row (for an interrupted run)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(admin_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "select stage::text as stage, conversations, chunks, embedded_chunks, "
            "embedding_model, stage_timings from public.import_jobs "
            "order by created_at desc limit 1"
        ).fetchone()
    timings = row["stage_timings"]
    # The stage running at the interrupt has no end yet: up to now.
    now = datetime.now(UTC).isoformat()
    for t in timings.values():
        t.setdefault("ended_at", now)
    return dict(row)


def _quartiles(values: list[float]) -> str:
    """RSS at the start, quarters and end of a stage: flat, or growing with the export."""
    if not values:
        return "-"
    return "/".join(f"{values[round(q * (len(values) - 1))]:.0f}" for q in (0, 0.25, 0.5, 0.75, 1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=20)
    ap.add_argument("--embedder", choices=("minilm", "standin"), default="minilm")
    ap.add_argument("--cpus", default=None, help="taskset CPU list for the run, e.g. 0")
    ap.add_argument(
        "--cold", action="store_true", help="no prebuilt graph: the run builds it (fresh cache)"
    )
    ap.add_argument(
        "--stop-after-embedded",
        type=int,
        default=0,
        help="interrupt the run once this many chunks are embedded (RSS is flat from there)",
    )
    ap.add_argument("--interval", type=float, default=0.1, help="sampling period, seconds")
    ap.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the run (repeatable)"
    )
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        embedder_env: dict[str, str] = {}
        if args.embedder == "standin":
            from tests.fake_openai import fake_openai

            srv = stack.enter_context(fake_openai())
            embedder_env = {
                "EMBEDDING_PROVIDER": "openai",
                "OPENAI_BASE_URL": srv.base_url,
                "OPENAI_API_KEY": srv.api_key,
                "EMBEDDING_MODEL": "text-embedding-3-small",
                "EMBEDDING_DIMENSIONS": "384",
            }
        measure(args, embedder_env)


def measure(args: argparse.Namespace, embedder_env: dict[str, str]) -> None:
    from pipeline.embedded import ensure_embedded

    CACHE.mkdir(parents=True, exist_ok=True)
    export = make_export(CACHE / f"e2e-{args.size_mb}mb.json", args.size_mb)
    data_dir = Path(tempfile.mkdtemp(prefix="soulprint-rss-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(embedder_env)
    env["SOULPRINT_DATA_DIR"] = str(data_dir)
    models = data_dir / "models" if args.cold else CACHE / "models"
    env.setdefault("SOULPRINT_MODEL_CACHE_DIR", str(models))
    env.update(dict(kv.split("=", 1) for kv in args.env))
    exe = [sys.executable, "-m", "pipeline.cli"]
    if args.embedder == "minilm" and not args.cold:
        subprocess.run([*exe, "models", "build"], env=env, check=True, capture_output=True)
    admin_url = ensure_embedded(data_dir)
    pin = ["taskset", "-c", args.cpus] if args.cpus else []
    try:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            start = time.perf_counter()
            proc = subprocess.Popen([*pin, *exe, "run", str(export), "--json"], env=env,
                                    stdout=out, stderr=err, text=True)  # fmt: skip
            sampler = Sampler(proc.pid, admin_url, args.interval, args.stop_after_embedded)
            sampler.start()
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            sampler.stop.set()
            sampler.join()
            out.seek(0)
            err.seek(0)
            code = os.waitstatus_to_exitcode(status)
            if sampler.interrupted_at is not None:
                result = _job_summary(admin_url)
            elif code != 0:
                sys.stderr.write(err.read()[-4000:])
                raise SystemExit("run failed")
            else:
                result = json.loads(out.read())
    finally:
        subprocess.run([*exe, "db", "down", "--data-dir", str(data_dir)], env=env,
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(data_dir, ignore_errors=True)  # a 100 MB import leaves ~1 GB
    if sampler.interrupted_at is not None:
        print(
            f"interrupted (Ctrl-C) once {sampler.interrupted_at:,} chunks were embedded: "
            "the embedding stage below is partial"
        )
    stages = stage_seconds(result["stage_timings"])
    order = sorted(stages, key=lambda s: result["stage_timings"][s]["started_at"])
    print(
        f"export {export.stat().st_size / 1e6:,.1f} MB: {result['conversations']:,} "
        f"conversations, {result['chunks']:,} chunks, stage {result['stage']}, "
        f"{result['embedding_model']}; cpus {args.cpus or 'all'}; env {args.env or '-'}"
        f"{'; graph built inside the run' if args.cold else ''}"
    )
    print(f"run: {wall:,.1f} s wall, {usage.ru_utime + usage.ru_stime:,.1f} s CPU")
    print(f"  {'stage':<22} {'seconds':>9} {'peak RSS MB':>12}   RSS at 0/25/50/75/100% of it")
    for stage in ["(before upload)", *order]:
        secs = f"{stages[stage]:9.1f}" if stage in stages else " " * 9
        peak = sampler.peaks.get(stage)
        print(
            f"  {stage:<22} {secs} {peak if peak is not None else float('nan'):12.0f}   "
            f"{_quartiles([mb for s, mb in sampler.trace if s == stage])}"
        )
    print(
        f"worker peak RSS (VmHWM) {sampler.hwm_mb:,.0f} MB; wait4 ru_maxrss "
        f"{usage.ru_maxrss / 1024:,.0f} MB (includes children it waited for); "
        f"{sampler.samples} samples"
    )


if __name__ == "__main__":
    main()
