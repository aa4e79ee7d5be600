"""`soulprint-import migrate`: apply pending migrations (bootstrap where Supabase is absent).

The only command, with `db up` and a local `run`, that changes the schema. Run it with an
admin DATABASE_URL (the worker role may not); without one, it migrates the embedded server.
Prints each migration applied, or that the database was up to date.
"""

from __future__ import annotations

import argparse

from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("migrate", help="apply pending migrations to DATABASE_URL (admin role)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.connections import database_url, migrate_or_explain

    settings = Settings.from_env()
    applied = migrate_or_explain(database_url(settings))
    for label in applied:
        print(f"applied {label}")
    if not applied:
        print("up to date")
    return 0
