"""`soulprint-import doctor`: check a deployment, one line per piece, exit 1 on any FAIL."""

from __future__ import annotations

import argparse

from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor", help="check a deployment: delivery, roles, Storage; exit 1 on any FAIL"
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="an admin URL (the postgres role); default DATABASE_URL, else the embedded database",
    )
    p.add_argument(
        "--delivery",
        choices=("pg_net", "relay"),
        default=None,
        help="how events leave the database (default: pg_net when SUPABASE_URL is set, else relay)",
    )
    p.add_argument(
        "--receiver-url",
        default=None,
        help="the receiver's URL (default: RECEIVER_URL, or the webhook URL in Vault)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.doctor import Delivery, run_checks

    settings = Settings.from_env()
    from pipeline.connections import database_url

    url = args.database_url or database_url(settings)
    # The choices of --delivery are the Delivery values.
    delivery: Delivery = args.delivery or ("pg_net" if settings.supabase_url else "relay")
    failed = False
    for check in run_checks(url, settings, delivery=delivery, receiver_url=args.receiver_url):
        print(check.line(), flush=True)
        failed = failed or check.status == "FAIL"
    return 1 if failed else 0
