"""`soulprint-import relay`: deliver the outbox (local mode, or wherever pg_net is absent)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from pipeline import log_redaction
from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("relay", help="deliver outbox events to RECEIVER_URL (or to Svix)")
    p.add_argument("--once", action="store_true", help="deliver what is due, then exit")
    p.add_argument("--poll", type=float, default=5.0, help="polling fallback, seconds")
    p.set_defaults(func=relay)


def relay(args: argparse.Namespace) -> int:
    from pipeline.connections import worker_database_url
    from pipeline.delivery.relay import Relay

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    log_redaction.install_for(settings)  # no token or secret in any log line
    try:
        r = Relay.from_settings(worker_database_url(settings), settings, poll_interval_s=args.poll)
    except ValueError as exc:
        print(f"soulprint-import relay: {exc}", file=sys.stderr)
        return 2
    if args.once:
        total = 0
        while sent := r.deliver_pending():
            total += sent
        r.stop()
        print(f"delivered {total} event(s)")
        return 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: r.request_stop())
    r.run()
    r.stop()
    return 0
