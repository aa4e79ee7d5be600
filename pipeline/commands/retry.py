"""`soulprint-import retry JOB`: resume a failed import from the stage that failed."""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import TYPE_CHECKING

from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.jobstore import JobStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("retry", help="resume a failed import from its failed stage")
    p.add_argument("job", type=uuid.UUID)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--no-wait", action="store_true", help="only re-open the job; a deployed worker picks it up"
    )
    p.set_defaults(func=run)


def why_not_retried(store: JobStore, job_id: uuid.UUID) -> str:
    """Why retry_import_job said no, as one line: not failed, or another import runs."""
    job = store.get(job_id)
    if job is None:
        return f"no import {job_id}"
    if job.stage != "failed":
        return f"import {job_id} has not failed (it is {job.stage}); only a failed import resumes"
    running = store.active_for_user(job.user_id)
    if running is not None:
        from pipeline.local import ImportAlreadyRunning

        return str(ImportAlreadyRunning(running))
    return f"import {job_id} could not be re-opened"


def run(args: argparse.Namespace) -> int:
    from pipeline.errors import RetryRefused

    settings = Settings.from_env()
    try:
        return _retry(args, settings)
    except RetryRefused as exc:  # a newer import completed: the message says what to do
        print(f"soulprint-import: {exc}", file=sys.stderr)
        return 1


def _retry(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.commands.output import job_summary, print_result, watch
    from pipeline.connections import database_url
    from pipeline.jobstore import JobStore
    from pipeline.local import LocalRuntime

    if args.no_wait:
        # Only re-opens the row (as the worker role in production): no migration, no runtime.
        with JobStore(database_url(settings)) as store:
            stage = store.retry(args.job)
            why = None if stage is not None else why_not_retried(store, args.job)
        if why is not None:
            print(f"soulprint-import: {why}", file=sys.stderr)
            return 1
        print(f"Import {args.job} re-opened at {stage}.")
        return 0
    with LocalRuntime(settings) as runtime:
        if runtime.store.retry(args.job) is None:
            print(f"soulprint-import: {why_not_retried(runtime.store, args.job)}", file=sys.stderr)
            return 1
        job = watch(runtime, args.job, show_progress=not args.json and sys.stderr.isatty())
        summary = job_summary(job, runtime.soulprint_text(job.id)) | runtime.store.export_facts(
            job.id
        )
    print_result(summary, args.json)
    return 0 if summary["stage"] == "complete" else 1
