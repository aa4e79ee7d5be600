"""`soulprint-import retry JOB`: resume a failed import from the stage that failed."""

from __future__ import annotations

import argparse
import sys
import uuid

from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retry", help="resume a failed import from its failed stage")
    p.add_argument("job", type=uuid.UUID)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-wait", action="store_true",
                   help="only re-open the job; a deployed worker picks it up")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.commands.run import print_result
    from pipeline.jobstore import JobStore
    from pipeline.local import LocalRuntime, admin_url_for, job_summary, watch

    settings = Settings.from_env()
    if args.no_wait:
        stage = JobStore(admin_url_for(settings)).retry(args.job)
        if stage is None:
            print(f"soulprint-import: import {args.job} has not failed", file=sys.stderr)
            return 1
        print(f"Import {args.job} re-opened at {stage}.")
        return 0
    with LocalRuntime(settings) as runtime:
        if runtime.store.retry(args.job) is None:
            print(f"soulprint-import: import {args.job} has not failed", file=sys.stderr)
            return 1
        job = watch(runtime, args.job, show_progress=not args.json and sys.stderr.isatty())
        summary = job_summary(job, runtime.soulprint_text(job.id))
    print_result(summary, args.json)
    return 0 if summary["stage"] == "complete" else 1
