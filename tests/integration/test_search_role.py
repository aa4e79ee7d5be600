"""The search role (import_searcher) and the worker's lost switch, on real PostgreSQL.

Guards seed pitfall 3 (a worker that can read every person's data) as issue 8 F5 found it
again in /v1/search: whoever may ``set role authenticated`` may also set any claims, so only
the search role may do it, and only the search endpoint and command hold its credentials
(they set the claims of a token they verified, nothing else)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from pipeline.embedded import searcher_url
from tests.dbutil import as_user, create_user, with_dbname
from tests.search_helpers import completed_import, unit_vector

DENIED = psycopg.errors.InsufficientPrivilege


def _two_people(db_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    alice, bob = create_user(db_url), create_user(db_url)
    completed_import(db_url, alice, [("a1", "alice pottery wheel", unit_vector(384, 1))])
    completed_import(db_url, bob, [("b1", "bob pottery kiln", unit_vector(384, 2))])
    return alice, bob


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    return conn.execute(f"select count(*) from public.{table}").fetchone()[0]


def test_the_worker_can_no_longer_become_a_person(db_url: str, worker_db_url: str) -> None:
    """Pitfall 3 / issue 8 F5: the worker's credentials (relay, sweeper, every stage) cannot
    switch to `authenticated`, so setting a person's claims gets them nothing of that
    person's completed import."""
    alice, _ = _two_people(db_url)
    with psycopg.connect(worker_db_url) as w:
        assert not w.execute(
            "select pg_has_role('import_worker', 'authenticated', 'MEMBER')"
        ).fetchone()[0]
        with pytest.raises(DENIED):
            as_user(w, alice)
        w.rollback()
        # Claims alone, without the role switch: still none of Alice's current chunks
        # (the worker sees data of ACTIVE imports only).
        w.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (f'{{"sub": "{alice}", "role": "authenticated"}}',),
        )
        assert _count(w, "memory_chunks") == 0
        with pytest.raises(DENIED):
            w.execute("select * from public.match_memories(null, 'pottery', 5)")


def test_the_search_role_alone_reads_nothing(db_url: str) -> None:
    """Pitfall 3: logged in as import_searcher and not switched, nothing is readable (it has
    no privileges of its own); switched to `authenticated` without claims, auth.uid() is
    null and RLS shows no row of anyone."""
    _two_people(db_url)
    with psycopg.connect(searcher_url(db_url)) as s:
        for table in ("memory_chunks", "import_jobs", "user_profiles", "soulprints"):
            with pytest.raises(DENIED):
                _count(s, table)
            s.rollback()
        with pytest.raises(DENIED):
            s.execute("select * from public.match_memories(null, 'pottery', 5)")
        s.rollback()
        s.execute("set local role authenticated")
        assert s.execute("select auth.uid()").fetchone()[0] is None
        for table in (
            "memory_chunks",
            "import_jobs",
            "user_profiles",
            "soulprints",
            "import_conversations",
        ):
            assert _count(s, table) == 0, table
        with pytest.raises(psycopg.errors.NoDataFound):
            s.execute("select * from public.match_memories(null, 'pottery', 5)")


def test_the_search_role_reaches_only_what_the_claims_it_sets_allow(db_url: str) -> None:
    """Pitfall 3: with Alice's claims the search role reads Alice's chunks and not one of
    Bob's, whatever it filters on; it cannot become the worker, service_role, anon or the
    admin instead (changing only the role). Which claims it sets is the service's job: it
    sets the `sub` of a token it has just verified (handlers/search.py)."""
    alice, bob = _two_people(db_url)
    with psycopg.connect(searcher_url(db_url)) as s:
        as_user(s, alice)
        rows = s.execute("select user_id, conversation_id from public.memory_chunks").fetchall()
        assert rows == [(alice, "a1")]
        assert (
            s.execute(
                "select count(*) from public.memory_chunks where user_id = %s", (bob,)
            ).fetchone()[0]
            == 0
        )
        hits = s.execute(
            "select conversation_id from public.match_memories(null, 'pottery', 5)"
        ).fetchall()
        assert hits == [("a1",)]
        s.rollback()
        for role in ("import_worker", "service_role", "anon", "postgres", "import_storage_reader"):
            with pytest.raises(DENIED):
                s.execute(f"set local role {role}")
            s.rollback()


def test_the_search_role_is_a_member_of_authenticated_only(db_url: str) -> None:
    """Pitfall 3: import_searcher logs in, does not inherit (membership only means "may
    switch"), has no superuser/bypassrls/createrole powers and belongs to `authenticated`
    and nothing else; no role but the admins may switch to it."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "select rolcanlogin, rolinherit, rolsuper, rolbypassrls, rolcreaterole, "
            "rolcreatedb from pg_roles where rolname = 'import_searcher'"
        ).fetchone()
        assert row == (True, False, False, False, False, False)
        member_of = {
            r[0]
            for r in conn.execute(
                "select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid "
                "join pg_roles u on u.oid = m.member where u.rolname = 'import_searcher'"
            )
        }
        assert member_of == {"authenticated"}
        members = {
            r[0]
            for r in conn.execute(
                "select u.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid "
                "join pg_roles u on u.oid = m.member where g.rolname = 'import_searcher'"
            )
        }
        assert members == set()


def test_the_search_role_may_not_create_temporary_objects(pg_server_url: str) -> None:
    """Issue 8 F1 (pg_temp planting): no TEMP for the search role on a freshly migrated
    database (database-level grants are not copied by the fixtures' TEMPLATE copies)."""
    from pipeline.migrate import apply_migrations

    name = f"sp_stemp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        url = with_dbname(pg_server_url, name)
        apply_migrations(url)
        with psycopg.connect(searcher_url(url)) as s, pytest.raises(DENIED):
            s.execute("create temporary table t (x int)")
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def test_the_search_role_has_no_privilege_of_its_own(db_url: str) -> None:
    """Pitfall 3: logged in (not switched), import_searcher holds nothing beyond what every
    role gets through PUBLIC: no table, column, sequence or function of the migrations'
    schemas is open to it that PUBLIC could not use too."""
    with psycopg.connect(db_url) as conn:
        tables = conn.execute(
            "select c.oid::regclass::text from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where n.nspname in ('public', 'auth', 'storage', "
            "'vault', 'net') and c.relkind in ('r', 'v', 'm', 'p', 'S') "
            "and exists (select 1 from unnest(array['SELECT','INSERT','UPDATE','DELETE',"
            "'TRUNCATE','REFERENCES','TRIGGER']) p(priv) "
            "where has_table_privilege('import_searcher', c.oid, p.priv) "
            "and not has_table_privilege('public', c.oid, p.priv))"
        ).fetchall()
        assert tables == []
        functions = conn.execute(
            "select p.oid::regprocedure::text from pg_proc p join pg_namespace n "
            "on n.oid = p.pronamespace where n.nspname in ('public', 'auth', 'storage', "
            "'extensions') and has_function_privilege('import_searcher', p.oid, 'EXECUTE') "
            "and not has_function_privilege('public', p.oid, 'EXECUTE')"
        ).fetchall()
        assert functions == []
        # ...and in particular not the search function itself.
        assert not conn.execute(
            "select has_function_privilege('import_searcher', "
            "'public.match_memories(extensions.vector, text, int, text, int)', 'EXECUTE')"
        ).fetchone()[0]
