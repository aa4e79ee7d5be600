"""`soulprint-import db up / down`: the embedded PostgreSQL as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline.migrate import list_migrations

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="soulprint-dbup-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "db", "down", "--data-dir", str(path)],
            cwd=REPO,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(path, ignore_errors=True)


def test_db_up_prints_a_working_url_and_reuses_the_server(data_dir: Path) -> None:
    """Guards pitfall 2 (cold starts breaking the import): with no DATABASE_URL the project
    brings its own migrated PostgreSQL; `db up` prints only its URL (usable as
    `$(soulprint-import db up)`), reuses the running server next time, and `db down` stops
    it."""
    first = _cli("db", "up", "--data-dir", str(data_dir))
    url = first.stdout.strip()
    assert first.stdout == url + "\n"
    assert url.startswith("postgresql://")
    with psycopg.connect(url) as conn:
        versions = [
            r[0]
            for r in conn.execute(
                "select version from supabase_migrations.schema_migrations order by 1"
            )
        ]
        started = conn.execute("select pg_postmaster_start_time()").fetchone()[0]
    assert versions == [m.version for m in list_migrations()]

    again = _cli("db", "up", "--data-dir", str(data_dir))
    assert again.stdout == first.stdout
    with psycopg.connect(url) as conn:
        assert conn.execute("select pg_postmaster_start_time()").fetchone()[0] == started

    worker = _cli("db", "up", "--worker", "--data-dir", str(data_dir)).stdout.strip()
    with psycopg.connect(worker) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "import_worker"

    _cli("db", "down", "--data-dir", str(data_dir))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3).close()
    # And up again: same data directory, same data.
    assert _cli("db", "up", "--data-dir", str(data_dir)).stdout == first.stdout
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "select count(*) from supabase_migrations.schema_migrations"
        ).fetchone()[0] == len(versions)
