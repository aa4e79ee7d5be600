"""The fresh-eyes security review of issues 8 and 16: each test is one finding's attack,
made against a freshly migrated database, and shows it blocked. Seed pitfall 3 (a worker
that can read everything) is what most of them guard.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from pipeline.doctor import CALLABLE_BY
from tests.dbutil import as_user, create_user, jobs_for, upload_object

# What anon and authenticated may EXECUTE in schema public: doctor's list (one owner).
PEOPLE_MAY_EXECUTE = CALLABLE_BY


def _storage_role_delete(url: str, bucket: str, name: str) -> int:
    """Delete one object the way Storage's DELETE /object/{bucket} does for a request
    carrying SUPABASE_WORKER_JWT: as authenticator, switched to the JWT's role, claims set.
    Returns how many rows RLS let it delete (the transaction commits)."""
    with psycopg.connect(make_conninfo(url, user="authenticator", password=None)) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', '{\"role\": \"import_storage_reader\"}', true)"
        )
        conn.execute("set local role import_storage_reader")
        # Storage's API sets this before its DELETE (direct deletes are refused otherwise).
        conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
        cur = conn.execute(
            "delete from storage.objects where bucket_id = %s and name = %s", (bucket, name)
        )
        return cur.rowcount


def _object_exists(url: str, bucket: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select exists (select 1 from storage.objects where bucket_id = %s and name = %s)",
            (bucket, name),
        ).fetchone()[0]


def _complete(url: str, job_id: uuid.UUID) -> None:
    """Mark a job complete as the migrations' owner would at the end of an import."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("update public.import_jobs set stage = 'complete' where id = %s", (job_id,))


# ---------------------------------------------------------------------------------------
# Finding 2: functions people can call
# ---------------------------------------------------------------------------------------


def test_people_and_anon_may_execute_only_the_allowed_public_functions(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), review finding 2: Supabase's
    default privileges grant every new public function to anon and authenticated, so
    import_export_replaced (and any later pipeline function) was callable with the anon key.
    Every function of schema public, for both roles, is checked against an allow-list."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("""
            select r.rolname, p.proname, p.oid::regprocedure::text
              from pg_proc p
              cross join (values ('anon'), ('authenticated')) r(rolname)
             where p.pronamespace = 'public'::regnamespace
               and has_function_privilege(r.rolname, p.oid, 'EXECUTE')
        """).fetchall()
    extra = sorted(sig for role, name, sig in rows if name not in PEOPLE_MAY_EXECUTE[role])
    assert extra == [], extra


def test_anon_cannot_ask_whether_an_export_was_replaced(db_url: str) -> None:
    """Guards pitfall 3, review finding 2: import_export_replaced(uuid) answers about any
    job id; anon and authenticated are refused outright."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    for role in ("anon", "authenticated", "service_role"):
        with psycopg.connect(db_url) as conn:
            assert not conn.execute(
                "select has_function_privilege(%s,"
                " 'public.import_export_replaced(uuid)', 'EXECUTE')",
                (role,),
            ).fetchone()[0]
    with psycopg.connect(db_url) as conn:
        conn.execute("set role anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select public.import_export_replaced(%s)", (job_id,))


# ---------------------------------------------------------------------------------------
# Findings 3 and 8: what the worker's JWT may delete in Storage
# ---------------------------------------------------------------------------------------


def test_worker_jwt_cannot_delete_a_pending_import_or_other_peoples_files(db_url: str) -> None:
    """Guards pitfall 3, review finding 3: with the old policy (bucket_id = 'imports') a
    leaked SUPABASE_WORKER_JWT deleted any export, including one still being imported and
    other people's. Now Storage refuses all but the exact object of a complete import, and
    anything outside bucket imports."""
    pending, other = create_user(db_url), create_user(db_url)
    upload_object(db_url, pending)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("insert into storage.buckets (id, name) values ('avatars', 'avatars')")
        conn.execute(
            "insert into storage.objects (bucket_id, name, version, owner_id)"
            " values ('avatars', %s, 'v1', %s)",
            (f"{other}/face.png", str(other)),
        )
        # A file in imports that no job ever read (e.g. uploaded before the trigger).
        conn.execute(
            "insert into storage.objects (bucket_id, name, version, owner_id)"
            " values ('imports', %s, 'v1', %s)",
            (f"{other}/notes.txt", str(other)),
        )
    assert _storage_role_delete(db_url, "imports", f"{pending}/export.zip") == 0
    assert _storage_role_delete(db_url, "avatars", f"{other}/face.png") == 0
    assert _storage_role_delete(db_url, "imports", f"{other}/notes.txt") == 0
    assert _object_exists(db_url, "imports", f"{pending}/export.zip")
    assert _object_exists(db_url, "avatars", f"{other}/face.png")
    assert _object_exists(db_url, "imports", f"{other}/notes.txt")


def test_worker_jwt_deletes_the_export_of_a_complete_import(db_url: str) -> None:
    """Guards issue 8 F7 (the raw export must not stay in Storage) alongside finding 3:
    narrowing the policy must not stop the one delete the pipeline needs."""
    user = create_user(db_url)
    upload_object(db_url, user)
    _complete(db_url, jobs_for(db_url, user)[0]["id"])
    assert _storage_role_delete(db_url, "imports", f"{user}/export.zip") == 1
    assert not _object_exists(db_url, "imports", f"{user}/export.zip")


def test_a_newer_upload_at_the_same_path_is_not_deleted_by_the_finished_import(db_url: str) -> None:
    """Guards pitfall 7 (an import acting on the wrong file), review finding 8: the worker
    checked "replaced since?" and then deleted, so an upsert landing in between was deleted
    with the old export's job. Storage now refuses it by itself: the delete names the row,
    and the row's version is the new upload's, which no complete import read."""
    user = create_user(db_url)
    upload_object(db_url, user, version="v1")
    first = jobs_for(db_url, user)[0]["id"]
    # Worker finishes job 1 ... and the person re-uploads before its delete arrives.
    _complete(db_url, first)
    upload_object(db_url, user, version="v2")
    assert _storage_role_delete(db_url, "imports", f"{user}/export.zip") == 0
    assert _object_exists(db_url, "imports", f"{user}/export.zip")
    assert [j["stage"] for j in jobs_for(db_url, user)] == ["complete", "queued"]


def test_only_the_storage_role_may_ask_which_exports_are_imported(db_url: str) -> None:
    """Guards pitfall 3, review finding 3: the policy's definer helper answers about any
    object; nobody but the Storage role (whose policy calls it) may execute it, and it
    pins pg_catalog, pg_temp (issue 8 F1)."""
    with psycopg.connect(db_url) as conn:
        who = {
            r[0]
            for r in conn.execute("""
            select r.rolname from pg_roles r
             where has_function_privilege(r.oid,
                     'public.imports_export_is_imported(text, text, text)', 'EXECUTE')
               and not r.rolsuper
        """)
        }
        config = conn.execute(
            "select proconfig from pg_proc where oid ="
            " 'public.imports_export_is_imported(text, text, text)'"
            "::regprocedure"
        ).fetchone()[0]
    assert who == {"import_storage_reader"}
    assert config == ["search_path=pg_catalog, pg_temp"]


# ---------------------------------------------------------------------------------------
# Finding 5: the upload cap counts every job
# ---------------------------------------------------------------------------------------


@contextmanager
def _person(url: str, user: uuid.UUID) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        as_user(conn, user)
        yield conn
        conn.commit()


def test_upload_cancel_upload_loop_is_capped(db_url: str) -> None:
    """Guards issue 8 F8 (unbounded uploads flood the outbox), review finding 5: the cap
    counted only rejected jobs, so upload -> cancel -> upload queued a whole new import (and
    posted its events) every round. At most 20 jobs per person per hour now; past that an
    upload starts nothing."""
    user = create_user(db_url)
    for round_ in range(30):
        upload_object(db_url, user, version=f"v{round_}")
        queued = [j for j in jobs_for(db_url, user) if j["stage"] == "queued"]
        for job in queued:
            with _person(db_url, user) as conn:
                conn.execute("select public.request_import_cancel(%s)", (job["id"],))
            with psycopg.connect(db_url, autocommit=True) as conn:
                # What the worker does when it sees the request on a queued job.
                conn.execute(
                    "update public.import_jobs set stage = 'cancelled'"
                    " where id = %s and stage = 'queued'",
                    (job["id"],),
                )
    jobs = jobs_for(db_url, user)
    assert len(jobs) == 20
    with psycopg.connect(db_url) as conn:
        events = conn.execute(
            "select count(*) from public.import_events e join"
            " public.import_jobs j on j.id = e.job_id where j.user_id = %s",
            (user,),
        ).fetchone()[0]
    assert events <= 20 * 2


def test_a_few_uploads_an_hour_still_import(db_url: str) -> None:
    """Guards against an over-tight cap (review finding 5): a person who uploads, cancels
    and uploads again a handful of times still gets their import queued."""
    user = create_user(db_url)
    for round_ in range(5):
        upload_object(db_url, user, version=f"v{round_}")
        job = jobs_for(db_url, user)[-1]
        assert job["stage"] == "queued"
        if round_ < 4:
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute(
                    "update public.import_jobs set stage = 'cancelled' where id = %s", (job["id"],)
                )


# ---------------------------------------------------------------------------------------
# Finding 7: the receipts-pruning guard and month arithmetic
# ---------------------------------------------------------------------------------------


def test_pruning_with_a_month_arithmetic_interval_is_refused(worker_db_url: str) -> None:
    """Guards pitfall 7 (duplicate imports through replayed webhooks), review finding 7:
    interval comparison counts a month as 30 days and a year as 360, so
    '-1 year 360 days 5 min' compared as 5 minutes and passed the guard, while now() minus
    it lies days in the future (a real year has 365 days): every receipt was pruned,
    including ones whose signature is still valid. The guard now compares the cut-off
    itself (the review's '1 mon -29 days -23 hours -55 min' is the same trick by month)."""
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        w.execute("insert into public.webhook_receipts (webhook_id) values ('msg_1')")
        for interval in ("-1 year 360 days 5 min", "-12 mon 361 days"):
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                w.execute("select public.prune_webhook_receipts(%s::interval)", (interval,))
        assert w.execute("select count(*) from public.webhook_receipts").fetchone()[0] == 1
        assert w.execute("select public.prune_webhook_receipts('7 days')").fetchone()[0] == 0
