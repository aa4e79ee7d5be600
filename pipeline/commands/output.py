"""What the CLI shows of an import: the live progress while it runs (``watch``), and the
result (``job_summary`` as `run --json` / `status --json` print it; ``print_result``)."""

from __future__ import annotations

import sys
import time
import uuid
from typing import TYPE_CHECKING

import orjson

from pipeline import lifecycle
from pipeline.commands.progress_view import ProgressView
from pipeline.jobstore import COUNTERS, Job
from pipeline.stage import TERMINAL

if TYPE_CHECKING:
    from pipeline.local import LocalRuntime

WATCH_INTERVAL_SECONDS = 0.2


def watch(runtime: LocalRuntime, job_id: uuid.UUID, *, show_progress: bool) -> Job:
    """Follow the job row until it reaches a terminal stage (what the app does via Realtime)."""
    view = ProgressView() if show_progress else None
    try:
        while True:
            job = runtime.store.get(job_id)
            if job is None:
                raise RuntimeError(f"import {job_id} disappeared")
            if view is not None:
                view.update(job)
            if job.stage in TERMINAL:
                return job
            time.sleep(WATCH_INTERVAL_SECONDS)
    except KeyboardInterrupt:
        # Stages see this between batches: they commit, release the lease and stop,
        # so the next `run` resumes where this one left off.
        lifecycle.request_shutdown()
        raise
    finally:
        if view is not None:
            view.close()


def job_summary(job: Job, soulprint_text: str | None) -> dict[str, object]:
    """The result of an import as `run --json` and `status --json` print it."""
    return {
        "import_id": str(job.id),
        "user_id": str(job.user_id),
        "stage": str(job.stage),
        **{k: getattr(job, k) for k in COUNTERS if k not in ("bytes_total", "bytes_done")},
        "excluded": job.excluded,
        "truncated": job.export_truncated,
        "export_warning": job.export_warning,
        "embedding_model": job.embedding_model,
        "embedding_dim": job.embedding_dim,
        "bytes": job.bytes_total,
        "sha256": job.sha256,
        "error_code": job.error_code,
        "error_message": job.error_message,
        "stage_timings": job.stage_timings,
        "soulprint_at": job.soulprint_at.isoformat() if job.soulprint_at else None,
        "soulprint_text": soulprint_text,
    }


def print_result(summary: dict[str, object], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(summary, default=str).decode() + "\n")
        return
    print(f"Import {summary['import_id']}: {summary['stage']}")
    if summary["stage"] == "complete":
        print(
            f"  {summary['conversations']:,} conversations, {summary['messages']:,} messages "
            f"({summary['user_messages']:,} yours), {summary['chunks']:,} memory chunks, "
            f"{summary['embedded_chunks']:,} embedded with {summary['embedding_model']}"
        )
        if summary.get("excluded"):
            n = int(summary["excluded"])  # type: ignore[call-overload]
            print(
                f"  {n:,} conversation{'s' if n != 1 else ''} you asked ChatGPT not to "
                "remember left out"
            )
        if summary.get("truncated"):
            print(f"  the export broke off; imported up to the break: {summary['export_warning']}")
        print()
        print(summary["soulprint_text"] or "")
    elif summary.get("error_message"):
        print(f"  {summary['error_message']}")
