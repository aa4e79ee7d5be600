"""`soulprint-import sweep`: one sweeper pass (a Render cron job), or `--loop`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from pipeline import log_redaction
from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sweep", help="re-emit events of stalled jobs; fail hopeless ones")
    p.add_argument("--loop", action="store_true", help="keep sweeping until SIGTERM")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between passes")
    p.add_argument(
        "--stale-after",
        type=float,
        default=None,
        help="seconds an event may go unacknowledged (default 2 x LEASE_SECONDS)",
    )
    p.set_defaults(func=sweep)


def sweep(args: argparse.Namespace) -> int:
    from pipeline.connections import worker_database_url
    from pipeline.sweeper import run_sweep

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    log_redaction.install_for(settings)  # no token or secret in any log line
    conninfo = worker_database_url(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while True:
        actions = run_sweep(conninfo, settings, stale_after=args.stale_after)
        for a in actions:
            print(f"{a.job_id} {a.action}")
        if not args.loop or stop.wait(args.interval):
            return 0
