"""`soulprint-import status [JOB]`: stage, counts and the timing of every stage."""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import datetime

import orjson

from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show an import (default: the latest one)")
    p.add_argument("job", type=uuid.UUID, nargs="?", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _duration(timing: dict[str, str]) -> str:
    try:
        start = datetime.fromisoformat(timing["started_at"])
        end = datetime.fromisoformat(timing["ended_at"]) if timing.get("ended_at") else None
    except (KeyError, TypeError, ValueError):
        return ""
    if end is None:
        return "running"
    return f"{(end - start).total_seconds():.2f}s"


def run(args: argparse.Namespace) -> int:
    from pipeline.jobstore import JobStore
    from pipeline.local import admin_url_for, job_summary

    settings = Settings.from_env()
    url = admin_url_for(settings)
    store = JobStore(url)
    job = store.get(args.job) if args.job else store.latest()
    if job is None:
        print("soulprint-import: no such import", file=sys.stderr)
        return 2
    summary = job_summary(job, None)
    if args.json:
        sys.stdout.write(orjson.dumps(summary, default=str).decode() + "\n")
        return 0
    print(f"Import {job.id}  user {job.user_id}")
    print(f"  stage: {job.stage}")
    print(f"  {job.conversations:,} conversations ({job.skipped_conversations:,} skipped), "
          f"{job.messages:,} messages, {job.chunks:,} chunks, "
          f"{job.embedded_chunks:,} embedded")
    if job.excluded:
        print(f"  {job.excluded:,} conversation{'s' if job.excluded != 1 else ''} left out "
              "(you asked ChatGPT not to remember them)")
    if job.export_truncated:
        print(f"  the export broke off; imported up to the break: {job.export_warning}")
    timings = sorted((job.stage_timings or {}).items(),
                     key=lambda item: item[1].get("started_at") or "")
    for stage, timing in timings:
        print(f"  {stage:<22} {timing.get('started_at', '')}  {_duration(timing)}")
    if job.error_message:
        print(f"  error ({job.error_code}): {job.error_message}")
    return 0
