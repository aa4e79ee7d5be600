"""Which database a command talks to. Resolving a URL changes nothing in any database.

- ``DATABASE_URL`` set: that URL, as it is. In production it is the least-privilege worker
  role, so status / cancel / retry / sweep / relay / replay run as that role. Nothing is
  migrated: migrations run only where asked (``migrate``, ``db up``, local ``run``), through
  ``migrate_or_explain``.
- Unset: the embedded PostgreSQL under the data dir (local mode), started if needed. That
  database belongs to this program, so starting it also brings its schema up to date
  (``ensure_embedded``); its worker URL is the same server as ``import_worker``.
- Searching (``POST /v1/search``, ``search``) uses ``SEARCH_DATABASE_URL`` (role
  ``import_searcher``), or locally the embedded server as that role; never the worker's.
"""

from __future__ import annotations

import psycopg

from pipeline.errors import SoulprintError
from pipeline.settings import Settings


class MigrationRefused(SoulprintError):
    """The database refused the migrations (typically: not an admin role). Says what to do."""


def database_url(settings: Settings) -> str:
    """DATABASE_URL unchanged, else the embedded server's admin URL (started if needed)."""
    if settings.database_url:
        return settings.database_url
    from pipeline.embedded import ensure_embedded

    return ensure_embedded(settings.data_dir)


def worker_database_url(settings: Settings) -> str:
    """DATABASE_URL unchanged (production: the worker role), else the embedded server as
    ``import_worker``."""
    if settings.database_url:
        return settings.database_url
    from pipeline.embedded import worker_url

    return worker_url(database_url(settings))


def search_database_url(settings: Settings) -> str | None:
    """SEARCH_DATABASE_URL unchanged (production: the import_searcher role); else, in local
    mode, the embedded server as ``import_searcher``; else None (DATABASE_URL without a
    search URL: searching is not configured, and never falls back to the worker)."""
    if settings.search_database_url:
        return settings.search_database_url
    if settings.database_url:
        return None
    from pipeline.embedded import searcher_url

    return searcher_url(database_url(settings))


def migrate_or_explain(url: str) -> list[str]:
    """Apply pending migrations to ``url``; the labels applied. A role without the rights
    to migrate raises MigrationRefused with a sentence instead of a stack trace."""
    from pipeline.migrate import apply_migrations

    try:
        return apply_migrations(url)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise MigrationRefused(
            "this DATABASE_URL may not change the schema "
            f"({exc.diag.message_primary or 'permission denied'}). Migrate with an admin "
            "URL (`supabase db push`, or `soulprint-import migrate` with DATABASE_URL set to "
            "the postgres role); the worker role only runs imports."
        ) from None
