"""`soulprint-import replay --since TIME [--job ID]`: deliver past events again."""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta

from pipeline.settings import Settings

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> datetime:
    """ISO 8601 (naive means UTC) or a span back from now: 90s, 30m, 6h, 2d."""
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if m:
        return datetime.now(UTC) - timedelta(**{_UNITS[m[2]]: int(m[1])})
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use ISO 8601 (2026-11-28T10:00Z) or a span like 30m, 6h, 2d"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="deliver events again (Svix recover/resend, or local log)")
    p.add_argument(
        "--since",
        type=parse_since,
        required=True,
        help="ISO 8601 time or a span back from now (30m, 6h, 2d)",
    )
    p.add_argument("--job", type=uuid.UUID, default=None, help="only this import's events")
    p.set_defaults(func=replay)


def replay(args: argparse.Namespace) -> int:
    from pipeline.connections import worker_database_url
    from pipeline.delivery.replay import replay as do_replay

    settings = Settings.from_env()
    try:
        result = do_replay(worker_database_url(settings), settings, args.since, args.job)
    except ValueError as exc:
        print(f"soulprint-import replay: {exc}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(result.outcomes.items())) or "nothing"
    print(f"replay ({result.mode}) since {args.since.isoformat()}: {summary}")
    return 0
