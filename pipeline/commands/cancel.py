"""`soulprint-import cancel JOB`: stop an import; its partial data is removed.

Exit 0 when the import is cancelled (or will stop at its next batch), 1 when it is not
running (finished, failed, already cancelled, or no such import).
"""

from __future__ import annotations

import argparse
import sys
import uuid

from pipeline.settings import Settings
from pipeline.stage import Stage


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cancel", help="cancel a running import")
    p.add_argument("job", type=uuid.UUID)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.connections import database_url
    from pipeline.jobstore import JobStore

    with JobStore(database_url(Settings.from_env())) as store:
        before = store.get(args.job)
        if before is None:
            print(f"soulprint-import: no import {args.job}", file=sys.stderr)
            return 1
        if not before.active:
            print(
                f"soulprint-import: import {args.job} is not running (it is "
                f"{before.stage}); nothing to cancel",
                file=sys.stderr,
            )
            return 1
        stage = store.request_cancel(args.job)
    if stage is None:
        print(f"soulprint-import: import {args.job} is not running", file=sys.stderr)
        return 1
    if str(stage) == "cancelled":
        print(f"Import {args.job} cancelled.")
        return 0
    if Stage(str(stage)).terminal:
        # It ended between our look and the request.
        print(
            f"soulprint-import: import {args.job} is not running (it is {stage}); "
            "nothing to cancel",
            file=sys.stderr,
        )
        return 1
    print(f"Cancel requested: import {args.job} stops at its next batch.")
    return 0
