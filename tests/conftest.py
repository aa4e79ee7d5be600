"""Real PostgreSQL for the tests: the embedded pgserver (PG16 + pgvector), or DATABASE_URL.

Fixtures:
- ``pg_admin_url`` (session): superuser URL of a migrated database on the test server. Shared
  by the whole session: create your own users/rows, never assume it is empty.
- ``db_url`` (function): superuser URL of a FRESH migrated database, cloned from a migrated
  template (CREATE DATABASE ... TEMPLATE: tens of milliseconds), dropped after the test.
- ``worker_db_url`` (function): the same fresh database as ``db_url``, logged in as the
  least-privilege role ``import_worker`` (what the stages and the relay use).
- ``pg_server_url`` (session): superuser URL of the server's maintenance database, for tests
  that create databases of their own.

Helpers to act on these (create_user, upload_object, as_user, jobs_for, ...) are in
tests/dbutil.py.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Both `from tests.dbutil import ...` and `from dbutil import ...` work, under `pytest` and
# `python -m pytest` alike.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import pytest

from pipeline.embedded import ensure_embedded, stop_embedded, worker_url

# One MiniLM graph build (a few seconds) for the whole run, not one per test data directory;
# CLI subprocesses inherit it through the environment.
os.environ.setdefault(
    "SOULPRINT_MODEL_CACHE_DIR", str(Path(tempfile.gettempdir()) / "soulprint-test-models")
)
from pipeline.migrate import apply_migrations
from tests.dbutil import with_dbname


def _create_db(server_url: str, name: str, template: str = "template0") -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{template}"')
        if template != "template0":
            # A template gives its contents, not the database's own grants: carry those
            # over, so every clone has the migrated ACL (no TEMP for the worker, issue 8 F1).
            conn.execute(
                "update pg_database set datacl = (select datacl from pg_database"
                " where datname = %s) where datname = %s",
                (template, name),
            )


def _drop_db(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Superuser URL of the test server's maintenance database (see module docstring)."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    data_dir = Path(tempfile.mkdtemp(prefix="soulprint-test-"))
    data_dir.chmod(0o755)  # postgres runs as the `pgserver` user when we are root
    try:
        url = ensure_embedded(data_dir)
        # A throwaway cluster: durability buys nothing here, speed does.
        with psycopg.connect(url, autocommit=True) as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"alter system set {setting} = off")
            conn.execute("select pg_reload_conf()")
        yield url
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def _template_db(pg_server_url: str) -> Iterator[str]:
    """Name of a migrated database nobody connects to: the source of every fresh clone."""
    name = f"sp_tpl_{uuid.uuid4().hex[:10]}"
    _create_db(pg_server_url, name)
    try:
        apply_migrations(with_dbname(pg_server_url, name))
        yield name
    finally:
        _drop_db(pg_server_url, name)


@contextmanager
def _migrated_copy(server_url: str, template: str, prefix: str) -> Iterator[str]:
    """Superuser URL of a new database cloned from the migrated template, dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _create_db(server_url, name, template)
    try:
        yield with_dbname(server_url, name)
    finally:
        _drop_db(server_url, name)


@pytest.fixture(scope="session")
def pg_admin_url(pg_server_url: str, _template_db: str) -> Iterator[str]:
    """Superuser URL of a migrated database shared by the whole session."""
    with _migrated_copy(pg_server_url, _template_db, "sp_session") as url:
        yield url


@pytest.fixture
def db_url(pg_server_url: str, _template_db: str) -> Iterator[str]:
    """Superuser URL of a fresh, migrated, empty database for this test only."""
    with _migrated_copy(pg_server_url, _template_db, "sp_test") as url:
        yield url


@pytest.fixture
def worker_db_url(db_url: str) -> str:
    """``db_url``'s database as the least-privilege worker role ``import_worker``."""
    return worker_url(db_url)


_LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The folder is the layer marker (``-m unit``); every e2e test is also ``slow``."""
    for item in items:
        layer = item.path.parent.name
        if layer not in _LAYERS:
            continue
        item.add_marker(layer)
        if layer == "e2e":
            item.add_marker("slow")


@pytest.fixture(autouse=True)
def _fresh_lifecycle() -> Iterator[None]:
    """Each test starts with the process not shutting down: a test that asked for shutdown
    (Ctrl-C, SIGTERM) must not make the next one's stages release at once."""
    from pipeline import lifecycle

    lifecycle.reset()
    yield
    lifecycle.reset()
