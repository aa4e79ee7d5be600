"""The embedded PostgreSQL (pgserver: PG16 + pgvector) used when no DATABASE_URL is set.

The cluster lives in ``<data_dir>/pg`` and keeps running between commands (``db down``
stops it). ``ensure_embedded`` is the one entry point: start if needed, migrate if needed,
return the admin URL. When the server already runs, it only reads postmaster.pid and asks
the database which migrations it has: well under a second.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

from pipeline.migrate import apply_migrations, list_migrations, sql_dir
from pipeline.queries import QUERIES

log = logging.getLogger(__name__)

WORKER_ROLE = "import_worker"
SEARCH_ROLE = "import_searcher"  # POST /v1/search and `search` only (may become a person)


def _pgdata(data_dir: Path) -> Path:
    return Path(data_dir).expanduser().resolve() / "pg"


def _postmaster(pgdata: Path) -> tuple[bool, str | None]:
    """(a ready server process is alive on ``pgdata``, its admin URL if its socket exists).

    Reads postmaster.pid directly instead of importing pgserver: that import alone costs
    more than the rest of a warm ``db up``.
    """
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False, None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return False, None
    try:
        os.kill(int(lines[0]), 0)  # signal 0: only asks whether it is alive
    except (ValueError, ProcessLookupError):
        return False, None
    except PermissionError:
        pass  # alive, owned by another user
    socket_dir = lines[4].strip()
    port = lines[3].strip() or "5432"
    if not socket_dir or not (Path(socket_dir) / f".s.PGSQL.{port}").exists():
        return True, None
    # Same form as pgserver's own get_uri(), plus the port when it is not the default.
    url = f"postgresql://postgres:@/postgres?host={quote(socket_dir)}"
    return True, url if port == "5432" else f"{url}&port={port}"


def _running_url(pgdata: Path) -> str | None:
    """The admin URL of a server already running and reachable on ``pgdata``."""
    return _postmaster(pgdata)[1]


def _is_current(admin_url: str) -> bool:
    """True when every migration file is recorded as applied, as it is now (an edited file
    sends us through apply_migrations, which warns about it)."""
    import psycopg

    from pipeline.migrate import split_statements

    try:
        with psycopg.connect(admin_url, connect_timeout=3) as conn:
            rows = conn.execute(QUERIES["migration_history"]).fetchall()
    except psycopg.Error:
        return False
    applied: dict[str, list[str]] = dict(rows)
    return all(
        applied.get(m.version) == split_statements(m.path.read_text())
        for m in list_migrations(sql_dir())
    )


def ensure_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded server in ``data_dir/pg``, migrate it, return the admin
    URL (superuser ``postgres`` over the unix socket in the data directory)."""
    pgdata = _pgdata(data_dir)
    url = _running_url(pgdata)
    if url is not None and _is_current(url):
        return url
    if url is None:
        url = _start(pgdata)
    applied = apply_migrations(url)
    if applied:
        log.info("embedded database migrated: %s", ", ".join(applied))
    return url


def _start(pgdata: Path) -> str:
    import pgserver  # slow import; only when a server must start

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    alive, url = _postmaster(pgdata)
    if alive and url is None:
        # Running but unreachable (its socket file was removed): restart it cleanly. A
        # server still starting is not "ready" and is left to pgserver, which waits for it.
        _pg_ctl_stop(pgdata)
    _initdb(pgdata)
    # cleanup_mode=None: the server outlives this process; `db down` stops it.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def _initdb(pgdata: Path) -> None:
    """Create the cluster ourselves, as pgserver would but with ``--no-sync``.

    initdb spends most of its time fsyncing a cluster that holds nothing yet (5 s instead of
    1.4 s on a busy CI box): skipping it is what keeps a fresh ``db up`` under 10 s. The
    cost is a cluster that could be damaged by a power loss in the first seconds of its
    life; everything written after it starts is protected by the WAL as usual.
    """
    # pgserver makes its command wrappers (initdb, pg_ctl, ...) at import time, so its
    # py.typed package declares none of them.
    from pgserver._commands import POSTGRES_BIN_PATH, initdb  # type: ignore[attr-defined]
    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:  # the same inter-process lock pgserver takes around initdb
        if (pgdata / "PG_VERSION").exists():
            return
        _kill_orphans(pgdata)
        pgdata.mkdir(exist_ok=True)
        user = None
        if os.geteuid() == 0:
            # As root, pgserver runs postgres as the system user `pgserver`.
            import stat

            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            entry = ensure_user_exists("pgserver")
            assert entry is not None
            ensure_prefix_permissions(pgdata)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            read = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
            user = "pgserver"
        initdb(
            [
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
                "--no-sync",
            ],
            pgdata=pgdata,
            user=user,
        )


def _kill_orphans(pgdata: Path) -> None:
    """Stop servers still running on a data directory that was deleted under them (as
    pgserver does before its own initdb): an orphan would otherwise delete the new server's
    socket file when it notices its lock file is gone."""
    import psutil

    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in (proc.info["cmdline"] or []):
            log.warning("stopping a postgres left running on deleted %s (pid %s)", pgdata, proc.pid)
            proc.terminate()
            try:
                proc.wait(5)
            except psutil.TimeoutExpired:
                proc.kill()


def _pg_ctl_stop(pgdata: Path) -> bool:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs postgres as this user
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        return False
    return True


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server of ``data_dir``; False when it was not running."""
    pgdata = _pgdata(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    return _pg_ctl_stop(pgdata)


def worker_url(admin_url: str) -> str:
    """The same server and database as ``admin_url``, logged in as the worker role.

    The password is dropped: locally the socket trusts it; elsewhere use the worker's own
    DATABASE_URL rather than deriving it from an admin one.
    """
    return role_url(admin_url, WORKER_ROLE)


def searcher_url(admin_url: str) -> str:
    """The same server and database as ``admin_url``, logged in as the search role (the
    only login that may switch to ``authenticated``). Password dropped as in worker_url;
    elsewhere set SEARCH_DATABASE_URL."""
    return role_url(admin_url, SEARCH_ROLE)


def role_url(admin_url: str, role: str) -> str:
    """``admin_url`` (URL or key=value conninfo) with user ``role`` and no password."""
    if not admin_url.startswith(("postgres://", "postgresql://")):
        from psycopg.conninfo import make_conninfo

        return make_conninfo(admin_url, user=role, password=None)
    parts = urlsplit(admin_url)
    host = parts.hostname or ""
    netloc = role + "@"
    if host:
        netloc += f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
    query = parse_qs(parts.query, keep_blank_values=True)
    query.pop("user", None)
    query.pop("password", None)
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, doseq=True), ""))
