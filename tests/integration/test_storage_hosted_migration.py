"""The migrations on a project where `postgres` does not own storage.objects (issue 16).

Current hosted projects: storage.objects and storage.buckets belong to
supabase_storage_admin; the migrating role `postgres` is no superuser and has table
privileges only (Storage's migrations 0046/0049: ALL ... WITH GRANT OPTION). CREATE POLICY
and DROP TRIGGER need ownership there, and a `supabase db push` that hits one stopped
half-way. Here the whole push completes, each statement it may not run becomes a NOTICE
with the exact SQL, and the upload trigger (TRIGGER privilege only) is in place.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from pipeline.migrate import apply_migrations, sql_dir
from tests.dbutil import create_user, jobs_for, upload_object, with_dbname

HOSTED_POSTGRES = "sp_hosted_postgres"
STORAGE_OWNER = "supabase_storage_admin"


def _ensure_role(conn: psycopg.Connection, ddl: str, name: str) -> None:
    # Roles are cluster-wide and other tests share the cluster.
    if conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone() is None:
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(ddl)


@pytest.fixture
def hosted_like_db(pg_server_url: str) -> Iterator[str]:
    """Superuser URL of a database set up the way hosted Supabase
    is before our first migration: Supabase's schemas present, Storage's tables owned by
    supabase_storage_admin, the migrating role a non-superuser owning the database."""
    name = f"sp_hosted_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        _ensure_role(conn, f"create role {STORAGE_OWNER} nologin", STORAGE_OWNER)
        _ensure_role(
            conn, f"create role {HOSTED_POSTGRES} login createrole bypassrls", HOSTED_POSTGRES
        )
        conn.execute(f'create database "{name}" owner {HOSTED_POSTGRES}')
    admin = with_dbname(pg_server_url, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute((sql_dir() / "bootstrap.sql").read_text())
        conn.execute("create extension if not exists vector with schema extensions")
        conn.execute(f"alter schema storage owner to {STORAGE_OWNER}")
        for table in ("storage.objects", "storage.buckets"):
            conn.execute(f"alter table {table} owner to {STORAGE_OWNER}")
            conn.execute(f"grant all on {table} to {HOSTED_POSTGRES} with grant option")
        conn.execute(f"grant usage on schema storage to {HOSTED_POSTGRES} with grant option")
        conn.execute(f"grant usage on schema auth to {HOSTED_POSTGRES}, {STORAGE_OWNER}")
        conn.execute(f"grant all on auth.users to {HOSTED_POSTGRES}")
        conn.execute(f"alter schema extensions owner to {HOSTED_POSTGRES}")
        conn.execute(f"alter publication supabase_realtime owner to {HOSTED_POSTGRES}")
        conn.execute(
            f"grant anon, authenticated, service_role, authenticator"
            f" to {HOSTED_POSTGRES} with admin option"
        )
        # Our own roles: on a real project `postgres` creates them (and so administers
        # them); in this shared test cluster an earlier database already did.
        for role in ("import_worker", "import_storage_reader"):
            if conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
                conn.execute(
                    f"grant {role} to {HOSTED_POSTGRES} with admin true, inherit false, set false"
                )
    try:
        yield admin
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def _as_role_url(url: str, role: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["user"] = role
    params.pop("password", None)
    return make_conninfo(**params)


def test_push_as_a_role_that_does_not_own_storage_objects_completes_with_notices(
    hosted_like_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16: as a non-owner `postgres` with the grants hosted projects give, every
    migration applies; each Storage policy it may not create is a NOTICE naming the SQL and
    the dashboard's policy editor; the upload trigger exists and starts imports; and the
    SQL in the NOTICEs, run by the table owner, creates the policies."""
    admin = hosted_like_db
    migrator = _as_role_url(admin, HOSTED_POSTGRES)
    with psycopg.connect(migrator) as conn:
        assert (
            conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0]
            is False
        )

    with caplog.at_level(logging.WARNING, logger="pipeline.migrate"):
        applied = apply_migrations(migrator)
    assert any(label.endswith("_storage_hosted") for label in applied)

    notices = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("soulprint-import:")
    ]
    policy_notices = [n for n in notices if "Storage policy" in n]
    assert len(policy_notices) == 8, notices
    for n in policy_notices:
        assert "Storage > Policies" in n and "create policy" in n

    with psycopg.connect(admin, autocommit=True) as conn:
        triggers = {
            r[0]
            for r in conn.execute(
                "select tgname from pg_trigger where tgrelid = 'storage.objects'::regclass"
                " and not tgisinternal"
            )
        }
        assert {"import_job_on_upload", "import_job_on_reupload"} <= triggers
        assert (
            conn.execute(
                "select count(*) from pg_policies where schemaname = 'storage'"
                " and policyname like 'imports:%'"
            ).fetchone()[0]
            == 0
        )

    user = create_user(admin)
    upload_object(admin, user)
    assert [j["stage"] for j in jobs_for(admin, user)] == ["queued"]

    # What the NOTICE says to run, run by the owner, gives the policies.
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"set role {STORAGE_OWNER}")
        for n in policy_notices:
            sql = re.search(r"run as the table owner: (drop policy .*);$", n, re.S)
            assert sql is not None, n
            conn.execute(sql.group(1))
        conn.execute("reset role")
        assert (
            conn.execute(
                "select count(*) from pg_policies where schemaname = 'storage'"
                " and policyname like 'imports:%'"
            ).fetchone()[0]
            == 8
        )


def test_the_storage_migration_reapplied_by_the_owner_replaces_without_dropping_triggers(
    db_url: str,
) -> None:
    """Issue 16: the Storage migration is idempotent and never drops the upload trigger:
    applied again, the triggers keep their identity (CREATE OR REPLACE) and uploads still
    start exactly one import."""
    sql = next((sql_dir() / "migrations").glob("*_storage_hosted.sql")).read_text()
    trig = (
        "select tgname, oid from pg_trigger where tgrelid = 'storage.objects'::regclass"
        " and tgname like 'import_job_%' order by 1"
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        before = conn.execute(trig).fetchall()
        conn.execute(sql)
        conn.execute(sql)
        assert conn.execute(trig).fetchall() == before
    user = create_user(db_url)
    upload_object(db_url, user)
    assert [j["stage"] for j in jobs_for(db_url, user)] == ["queued"]
