"""`soulprint-import cancel JOB`: stop an import; its partial data is removed."""

from __future__ import annotations

import argparse
import sys
import uuid

from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cancel", help="cancel an import")
    p.add_argument("job", type=uuid.UUID)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.jobstore import JobStore
    from pipeline.local import admin_url_for

    store = JobStore(admin_url_for(Settings.from_env()))
    stage = store.request_cancel(args.job)
    if stage is None:
        print(f"soulprint-import: import {args.job} is not running", file=sys.stderr)
        return 1
    if str(stage) == "cancelled":
        print(f"Import {args.job} cancelled.")
    else:
        print(f"Cancel requested: import {args.job} stops at its next batch.")
    return 0
