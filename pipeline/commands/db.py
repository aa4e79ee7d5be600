"""`soulprint-import db up|down`: the embedded PostgreSQL (pgserver, PG16 + pgvector).

`db up` starts the server under the data dir if needed, applies bootstrap and migrations if
needed, and prints the admin connection URL on stdout, nothing else (so `$(soulprint-import
db up)` works). With DATABASE_URL set and no --data-dir, it migrates that database instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("db", help="start/stop the embedded PostgreSQL")
    actions = p.add_subparsers(dest="db_action", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start and migrate as needed; print the URL")
    up.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the cluster lives (default: the user data dir)",
    )
    up.add_argument(
        "--worker",
        action="store_true",
        help="print the least-privilege worker URL instead of the admin URL",
    )
    up.set_defaults(func=run_up)

    down = actions.add_parser("down", help="stop the embedded PostgreSQL")
    down.add_argument("--data-dir", type=Path, default=None)
    down.set_defaults(func=run_down)


def run_up(args: argparse.Namespace) -> int:
    from pipeline.embedded import worker_url

    settings = Settings.from_env()
    if args.data_dir is None and settings.database_url:
        from pipeline.connections import migrate_or_explain

        migrate_or_explain(settings.database_url)  # `db up` is asked to migrate
        url = settings.database_url
    else:
        from pipeline.embedded import ensure_embedded

        url = ensure_embedded(args.data_dir or settings.data_dir)
    sys.stdout.write((worker_url(url) if args.worker else url) + "\n")
    return 0


def run_down(args: argparse.Namespace) -> int:
    from pipeline.embedded import stop_embedded

    settings = Settings.from_env()
    stopped = stop_embedded(args.data_dir or settings.data_dir)
    print("stopped" if stopped else "not running", file=sys.stderr)
    return 0
