"""`soulprint-import janitor`: delete export copies a dead stage left on this machine's disk."""

from __future__ import annotations

import argparse
import logging
import sys

import orjson

from pipeline import log_redaction
from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "janitor",
        help="delete leftover copies of exports under SOULPRINT_DATA_DIR/downloads",
    )
    p.add_argument("--json", action="store_true", help="print what was removed and kept")
    p.set_defaults(func=janitor)


def janitor(args: argparse.Namespace) -> int:
    """One pass. A copy a stage may be reading right now stays: this process runs no stages,
    so a live lease held by any process on this host counts as in use."""
    from pipeline.connections import worker_database_url
    from pipeline.janitor import sweep_downloads

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    log_redaction.install_for(settings)
    result = sweep_downloads(settings.data_dir, worker_database_url(settings), this_process=False)
    if args.json:
        body = {"removed": result.removed, "kept": result.kept}
        sys.stdout.write(orjson.dumps(body).decode() + "\n")
    else:
        kept = sum(len(v) for v in result.kept.values())
        print(f"removed {result.removed_count} leftover export file(s); {kept} in use, kept")
    return 0
