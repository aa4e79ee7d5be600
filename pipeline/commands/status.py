"""`soulprint-import status [JOB]`: one import's stage, counts and stage timings; without
JOB, the recent imports (id, stage, when, counts).

Reads only: resolving the database never migrates it, so this works as the worker role.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.settings import Settings
from pipeline.wording import counted


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="show an import, or list the recent ones")
    p.add_argument(
        "job",
        type=uuid.UUID,
        nargs="?",
        default=None,
        help="an import id (default: list the recent imports)",
    )
    p.add_argument("--user", type=uuid.UUID, default=None, help="list only this person's imports")
    p.add_argument("--limit", type=int, default=10, help="how many imports to list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _parse(ts: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(ts) if ts else None
    except ValueError:
        return None


def stage_duration(
    stage: str, timing: dict[str, str], *, active: bool, now: datetime | None = None
) -> str:
    """What the duration column says for one stage of the timings: seconds for a stage
    that ended, "running Ns" for the stage a live job is in, nothing for the terminal stage
    a finished job rests in (it has no end)."""
    start, end = _parse(timing.get("started_at")), _parse(timing.get("ended_at"))
    if start is None:
        return ""
    # The wait for a free worker (stage entered -> first claim), kept apart from the
    # stage's own time, which starts at that claim (20261201100000_pull_queue.sql).
    waited = timing.get("waited_s")
    wait = f" (waited {float(waited):.2f}s)" if waited is not None else ""
    if end is not None:
        return f"{(end - start).total_seconds():.2f}s{wait}"
    if active:
        return f"running {((now or datetime.now(UTC)) - start).total_seconds():.0f}s{wait}"
    return ""


def run(args: argparse.Namespace) -> int:
    from pipeline.connections import database_url
    from pipeline.jobstore import JobStore

    settings = Settings.from_env()
    with JobStore(database_url(settings)) as store:
        if args.job is None:
            return _print_list(store.recent(args.user, args.limit), args.json)
        job = store.get(args.job)
        if job is None:
            print(f"soulprint-import: no import {args.job}", file=sys.stderr)
            return 2
        soulprint_text = store.soulprint_text(job.id)
        facts = store.export_facts(job.id)
    return _print_one(job, soulprint_text, args.json, facts)


def _print_list(jobs: list[Any], as_json: bool) -> int:
    from pipeline.commands.output import job_summary

    if as_json:
        out = [job_summary(job, None) | {"created_at": job.created_at} for job in jobs]
        sys.stdout.write(orjson.dumps(out, default=str).decode() + "\n")
        return 0
    if not jobs:
        print("No imports yet. Start one with: soulprint-import run PATH", file=sys.stderr)
        return 0
    print(f"{'import':<36}  {'stage':<20}  {'created (UTC)':<19}  counts")
    for job in jobs:
        when = (
            job.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if job.created_at else ""
        )
        print(
            f"{job.id!s:<36}  {job.stage!s:<20}  {when:<19}  "
            f"{counted(job.conversations, 'conversation')}, "
            f"{counted(job.chunks, 'chunk')}, {job.embedded_chunks:,} embedded"
        )
    return 0


def _print_one(job: Any, soulprint_text: str | None, as_json: bool, facts: dict[str, int]) -> int:
    from pipeline.commands.output import job_summary

    if as_json:
        summary = job_summary(job, soulprint_text) | facts
        sys.stdout.write(orjson.dumps(summary, default=str).decode() + "\n")
        return 0
    print(f"Import {job.id}  user {job.user_id}")
    print(f"  stage: {job.stage}")
    print(
        f"  {counted(job.conversations, 'conversation')} "
        f"({job.skipped_conversations:,} skipped), {counted(job.messages, 'message')}, "
        f"{counted(job.chunks, 'chunk')}, {job.embedded_chunks:,} embedded"
    )
    if job.excluded:
        print(
            f"  {job.excluded:,} conversation{'s' if job.excluded != 1 else ''} left out "
            "(you asked ChatGPT not to remember them)"
        )
    if job.export_truncated:
        print(f"  the export broke off; imported up to the break: {job.export_warning}")
    timings = sorted(
        (job.stage_timings or {}).items(), key=lambda item: item[1].get("started_at") or ""
    )
    for stage, timing in timings:
        duration = stage_duration(stage, timing, active=job.active and stage == job.stage)
        print(f"  {stage:<22} {timing.get('started_at', '')}  {duration}".rstrip())
    if job.error_message:
        print(f"  error ({job.error_code}): {job.error_message}")
    return 0
