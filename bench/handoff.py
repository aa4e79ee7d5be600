"""Download hand-off benchmark: downloading then parsing, with and without the hand-off.

A synthetic export in a real database (the embedded one, or DATABASE_URL), fetched from the
loopback stand-in of Supabase Storage (tests/fake_storage.py, real HTTP and signed URLs).
Per mode, in the order A B A B on fresh uploads of the same file:
  hand-off   the receiver's runner: downloading, then parsing claimed in the same slot,
             reading the copy downloading verified (one download);
  separate   downloading, then parsing as another instance would run it (two downloads).
Prints the better of two wall times for downloading + parsing, Storage GETs per import,
the ratio hand-off / separate, and what is left in the downloads dir (nothing).
Loopback is far faster than Storage to Render, so the saving here is a floor.

    python bench/handoff.py [--conversations 4000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.embedded import stop_embedded, worker_url  # noqa: E402
from pipeline.jobstore import JobStore  # noqa: E402
from pipeline.local import LocalRuntime, admin_url_for  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.stages import run_stage  # noqa: E402
from tests import export_factory as ef  # noqa: E402
from tests.fake_storage import fake_storage, worker_settings  # noqa: E402


def one_import(runtime: LocalRuntime, export: Path, settings: Settings, worker: str, mode: str):
    """Seconds for downloading + parsing of a fresh upload of ``export``."""
    user = uuid.uuid4()
    runtime.ensure_user(user)
    job_id = runtime.upload(export, user)
    store = JobStore(worker)
    assert run_stage(job_id, "queued", settings, store, worker) == "done"
    start = time.perf_counter()
    if mode == "hand-off":
        assert run_stage(job_id, "downloading", settings, store, worker, hand_off=True) == "done"
    else:
        assert run_stage(job_id, "downloading", settings, store, worker) == "done"
        assert run_stage(job_id, "parsing", settings, store, worker) == "done"
    wall = time.perf_counter() - start
    assert str(store.get(job_id).stage) == "generating_soulprint"
    store.close()
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=4000)
    args = ap.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="soulprint-bench-handoff-"))
    local = Settings(data_dir=data_dir, database_url=os.environ.get("DATABASE_URL"))
    admin = admin_url_for(local)
    worker = worker_url(admin)
    try:
        export = ef.write_zip(
            data_dir / "export.zip",
            ef.make_export(args.conversations, 6, era="mixed", assistant_chars=900),
        )
        size = export.stat().st_size
        runtime = LocalRuntime(local)
        runtime.admin_url = admin  # uploads only: stages run here
        with fake_storage(data_dir / "storage") as storage:
            settings = worker_settings(data_dir / "worker", storage.url)
            times: dict[str, list[float]] = {"hand-off": [], "separate": []}
            gets: dict[str, int] = {"hand-off": 0, "separate": 0}
            for mode in ("hand-off", "separate", "hand-off", "separate"):
                before = sum(1 for m, _, _ in storage.requests if m == "GET")
                times[mode].append(one_import(runtime, export, settings, worker, mode))
                gets[mode] = sum(1 for m, _, _ in storage.requests if m == "GET") - before
        left = list((settings.data_dir / "downloads").iterdir())
        best = {m: min(t) for m, t in times.items()}
        print(f"export {size / 1e6:.1f} MB ({args.conversations} conversations)")
        for mode in ("hand-off", "separate"):
            print(f"{mode:<9} {best[mode]:6.2f} s  {gets[mode]} download(s) per import")
        print(f"ratio hand-off / separate {best['hand-off'] / best['separate']:.2f}")
        print(f"files left in the downloads dir: {len(left)}")
    finally:
        if not local.database_url:
            stop_embedded(data_dir)


if __name__ == "__main__":
    main()
