"""Apply supabase/bootstrap.sql (where Supabase is absent) and supabase/migrations/*.sql.

Migrations are recorded in ``supabase_migrations.schema_migrations`` exactly as the Supabase
CLI records them (version = the file name's leading timestamp), so ``supabase db push`` and
this module agree on what has been applied. Each file runs in one transaction; concurrent
callers serialise on an advisory lock, and a second caller finds nothing left to do.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from pipeline.db import connect
from pipeline.queries import QUERIES

log = logging.getLogger(__name__)

# Any fixed number: ours, per database (advisory locks are scoped to the current database).
_LOCK_KEY = 0x5350_494D_5052_5431  # "SPIMPRT1"

_VERSION_RE = re.compile(r"^(?P<version>\d+)_(?P<name>.+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def sql_dir() -> Path:
    """The SQL shipped in the wheel (pipeline/_sql), else the repository's supabase/."""
    packaged = Path(__file__).resolve().parent / "_sql"
    if (packaged / "migrations").is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "supabase"


def list_migrations(root: Path | None = None) -> list[Migration]:
    """Migration files in apply order (by version, like the CLI)."""
    folder = (root or sql_dir()) / "migrations"
    found = []
    for path in folder.glob("*.sql"):
        m = _VERSION_RE.match(path.name)
        if m:
            found.append(Migration(m["version"], m["name"], path))
    return sorted(found, key=lambda mig: mig.version)


def split_statements(sql: str) -> list[str]:
    """Split a SQL script into statements, respecting quotes, comments and $tag$ bodies.

    Only used to fill the ``statements`` column the way the CLI does; the file itself is
    executed whole.
    """
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            buf.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            buf.append(sql[i:j])
            i = j
        elif ch == "'" or ch == '"':
            j = i + 1
            while j < n:
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            buf.append(sql[i : j + 1])
            i = j + 1
        elif ch == "$" and (m := re.match(r"\$[A-Za-z_]*\$", sql[i:])):
            tag = m.group(0)
            j = sql.find(tag, i + len(tag))
            j = n if j < 0 else j + len(tag)
            buf.append(sql[i:j])
            i = j
        elif ch == ";":
            stmt = "".join(buf).strip()
            if stmt and not all(
                line.strip().startswith("--") or not line.strip() for line in stmt.splitlines()
            ):
                out.append(stmt)
            buf = []
            i += 1
        else:
            buf.append(ch)
            i += 1
    tail = "".join(buf).strip()
    if tail and not all(
        line.strip().startswith("--") or not line.strip() for line in tail.splitlines()
    ):
        out.append(tail)
    return out


def _needs_bootstrap(conn: psycopg.Connection[dict[str, Any]]) -> bool:
    row = conn.execute(QUERIES["migrate_needs_bootstrap"]).fetchone()
    assert row is not None
    return bool(row["missing"])


def _ensure_history_table(conn: psycopg.Connection[dict[str, Any]]) -> None:
    # The CLI's own DDL, so either side can create it first.
    conn.execute(QUERIES["migrate_history_schema"])
    conn.execute(QUERIES["migrate_history_table"])
    conn.execute(QUERIES["migrate_history_statements"])
    conn.execute(QUERIES["migrate_history_name"])


def _warn_if_edited(mig: Migration, applied_statements: list[str] | None) -> None:
    """Migrations are never re-applied (like the CLI); say so when a file changed after it
    was applied, instead of leaving a database that silently differs from the code."""
    if applied_statements and applied_statements != split_statements(mig.path.read_text()):
        log.warning(
            "migration %s changed after it was applied to this database; it is not applied "
            "again. A local embedded database can be rebuilt: `soulprint-import db down`, "
            "then delete <data dir>/pg.",
            mig.label,
        )


# Migrations speak to the operator through NOTICEs that start with this (e.g. "create this
# Storage policy in the dashboard"): they must be seen, not lost in the server log.
OPERATOR_NOTICE_PREFIX = "soulprint-import:"


def _log_notice(diag: psycopg.errors.Diagnostic) -> None:
    message = diag.message_primary or ""
    if message.startswith(OPERATOR_NOTICE_PREFIX):
        log.warning("%s", message)
    else:
        log.debug("migration notice: %s", message)


def apply_migrations(admin_url: str) -> list[str]:
    """Bring the database at ``admin_url`` up to date; return the migrations applied now
    (``"<version>_<name>"``), empty when it already was. Safe to call concurrently."""
    root = sql_dir()
    applied: list[str] = []
    with connect(admin_url, autocommit=True, application_name="soulprint-import migrate") as conn:
        conn.add_notice_handler(_log_notice)
        conn.execute(QUERIES["migrate_lock"], (_LOCK_KEY,))
        try:
            if _needs_bootstrap(conn):
                log.info("no Supabase surroundings found: applying bootstrap.sql")
                with conn.transaction():
                    conn.execute((root / "bootstrap.sql").read_text())
            with conn.transaction():
                _ensure_history_table(conn)
            done = {
                r["version"]: r["statements"] for r in conn.execute(QUERIES["migration_history"])
            }
            for mig in list_migrations(root):
                if mig.version in done:
                    _warn_if_edited(mig, done[mig.version])
                    continue
                sql = mig.path.read_text()
                log.info("applying migration %s", mig.label)
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        QUERIES["migrate_record"],
                        (mig.version, mig.name, split_statements(sql)),
                    )
                # A migration may `set search_path`; start the next one from the default.
                conn.execute(QUERIES["migrate_reset"])
                applied.append(mig.label)
        finally:
            conn.execute(QUERIES["migrate_unlock"], (_LOCK_KEY,))
    return applied
