"""Issue 8, roles and privileges: each test is an attack from the adversarial review, made
against a fresh migrated database, and shows it blocked. Seed pitfall 3 (a worker that can
read everything) is what most of them guard: a credential must be good for its one job only.
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

from tests.dbutil import create_user, jobs_for, upload_object, user_session, with_dbname

DENIED = psycopg.errors.InsufficientPrivilege

# The tables the migrations create or alter, and every role an outside caller can be.
OUR_TABLES = (
    "import_jobs",
    "import_events",
    "event_deliveries",
    "webhook_receipts",
    "import_conversations",
    "memory_chunks",
    "soulprints",
    "user_profiles",
    "import_progress",
    # The embedding fan-out's batches (issue 15): nobody's but the functions' (no row below).
    "import_embedding_batches",
)
API_ROLES = ("anon", "authenticated", "import_worker", "import_storage_reader")
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

# Exactly what each role holds on each table (table-level grants; RLS narrows rows further).
# Anything not listed must be absent. import_jobs: people get a column-level SELECT (F10);
# the worker's outbox updates are column-level too.
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("authenticated", "import_conversations"): {"SELECT"},
    ("authenticated", "memory_chunks"): {"SELECT"},
    ("authenticated", "soulprints"): {"SELECT"},
    # The published copy of a job (Realtime): read-only, own rows (RLS); written by trigger.
    ("authenticated", "import_progress"): {"SELECT"},
    # The app's table: its own write policies decide (RLS), and the import columns are
    # guarded by a trigger; TRUNCATE (which skips RLS) is gone.
    ("authenticated", "user_profiles"): {"SELECT", "INSERT", "UPDATE", "DELETE"},
    ("import_worker", "import_jobs"): {"SELECT"},
    ("import_worker", "import_events"): {"SELECT"},
    ("import_worker", "event_deliveries"): {"SELECT", "INSERT"},
    ("import_worker", "webhook_receipts"): {"SELECT", "INSERT"},
    ("import_worker", "import_conversations"): {"SELECT", "INSERT"},
    ("import_worker", "memory_chunks"): {"SELECT", "INSERT"},
}

HIDDEN_JOB_COLUMNS = ("lease_owner", "lease_expires_at", "checkpoint")


def as_role(url: str, role: str) -> str:
    """The same database, logged in as ``role`` (the embedded server trusts local logins)."""
    return make_conninfo(url, user=role, password=None)


@contextmanager
def as_storage_jwt(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A transaction acting as a request carrying SUPABASE_WORKER_JWT, the way PostgREST,
    GraphQL and Storage run it: logged in as authenticator, claims set, role switched."""
    with psycopg.connect(as_role(url, "authenticator"), row_factory=dict_row) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', '{\"role\": \"import_storage_reader\"}', true)"
        )
        conn.execute("set local role import_storage_reader")
        try:
            yield conn
        finally:
            conn.rollback()


def search_path_of(config: list[str] | None) -> list[str] | None:
    """The entries of a function's pinned search_path (proconfig), None when not pinned."""
    for item in config or []:
        if item.startswith("search_path="):
            value = item.removeprefix("search_path=")
            return [p.strip().strip('"') for p in value.split(",") if p.strip().strip('"')]
    return None


# ---------------------------------------------------------------------------------------
# F1: the worker must not run its own code as the functions' owner
# ---------------------------------------------------------------------------------------

EVIL = """
create function pg_temp.evil(anyelement) returns boolean language sql as $$
  select set_config('sp.evil_ran_as', current_user::pg_catalog.text, false) is not null
$$
"""


def _plant_domain(conn: psycopg.Connection[Any], type_name: str) -> None:
    """A temporary domain named like a built-in type whose check runs pg_temp.evil."""
    conn.execute(EVIL)
    conn.execute(
        f"create domain pg_temp.{type_name} as pg_catalog.{type_name} check (pg_temp.evil(value))"
    )


def _evil_ran_as(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("select current_setting('sp.evil_ran_as', true) as who").fetchone()
    return (row["who"] if isinstance(row, dict) else row[0]) or None


@pytest.fixture
def worker_with_temp(db_url: str, worker_db_url: str) -> str:
    """The worker's URL on a database where it may create temporary objects: the search_path
    fix must hold on its own, even where TEMP was left granted."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        dbname = conn.execute("select current_database()").fetchone()[0]
        conn.execute(f'grant temporary on database "{dbname}" to import_worker')
    return worker_db_url


def test_worker_temp_jsonb_domain_does_not_run_as_owner_via_report_progress(
    db_url: str, worker_with_temp: str
) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F1: a pg_temp.jsonb
    domain whose check is the worker's own function must not run inside
    report_import_progress (SECURITY DEFINER) as the owner."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    with psycopg.connect(worker_with_temp, autocommit=True) as w:
        _plant_domain(w, "jsonb")
        w.execute("select public.claim_import_job(%s, 'queued', 'w', 60)", (job_id,))
        status = w.execute(
            "select public.report_import_progress(%s, 'w', '{}'::pg_catalog.jsonb,"
            " '{}'::pg_catalog.jsonb, 60)",
            (job_id,),
        ).fetchone()[0]
        assert status == "ok"
        assert _evil_ran_as(w) is None


def test_worker_temp_text_domain_does_not_run_as_owner_via_before_trigger(
    db_url: str, worker_with_temp: str
) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F1: a pg_temp.text
    domain must not run inside the import_jobs BEFORE trigger, which a definer function
    (claim_import_job) fires as the owner."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    with psycopg.connect(worker_with_temp, autocommit=True) as w:
        _plant_domain(w, "text")
        claimed = w.execute(
            "select (public.claim_import_job(%s, 'queued', 'w', 60)).id", (job_id,)
        ).fetchone()[0]
        assert claimed == job_id
        nxt = w.execute(
            "select public.advance_import_job(%s, 'w', 'queued')", (job_id,)
        ).fetchone()[0]
        assert nxt == "downloading"
        assert _evil_ran_as(w) is None


def test_no_function_leaves_pg_temp_ahead_of_the_catalog(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F1: every SECURITY
    DEFINER function outside the system schemas pins a search_path ending in pg_temp (and not
    starting with it); so does every function that pins one at all (a trigger function with
    search_path '' fired by a definer function runs as the owner too). Migrations added later
    that forget this fail here."""
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        rows = conn.execute("""
            select p.oid::regprocedure::text as fn, p.prosecdef as definer,
                   p.proconfig as config
              from pg_proc p
              join pg_namespace n on n.oid = p.pronamespace
             where n.nspname not in ('pg_catalog', 'information_schema')
               and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
               and not exists (select 1 from pg_depend d
                                where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                                  and d.deptype = 'e')
        """).fetchall()
    assert any("report_import_progress" in r["fn"] for r in rows)
    bad = []
    for r in rows:
        path = search_path_of(r["config"])
        if path is None:
            if r["definer"]:
                bad.append(f"{r['fn']}: SECURITY DEFINER without a pinned search_path")
            continue
        if not path or path[-1] != "pg_temp" or path[0] == "pg_temp":
            bad.append(f"{r['fn']}: search_path {path!r}")
    assert bad == []


def test_worker_may_not_create_temporary_objects(pg_server_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F1: TEMP on the database
    is taken from the worker (defence in depth: no pg_temp objects to plant at all). A fresh
    database migrated here, because database-level grants are not copied by the test
    fixtures' CREATE DATABASE ... TEMPLATE."""
    from pipeline.embedded import worker_url
    from pipeline.migrate import apply_migrations

    name = f"sp_temp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        url = with_dbname(pg_server_url, name)
        apply_migrations(url)
        with psycopg.connect(url) as conn:
            assert not conn.execute(
                "select has_database_privilege('import_worker', current_database(), 'TEMP')"
            ).fetchone()[0]
            # The API roles keep it (PostgREST and apps may use temporary tables).
            assert conn.execute(
                "select has_database_privilege('authenticated', current_database(), 'TEMP')"
            ).fetchone()[0]
        with psycopg.connect(worker_url(url)) as w, pytest.raises(DENIED):
            w.execute("create temporary table t (x int)")
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


# ---------------------------------------------------------------------------------------
# F5: the worker's JWT is good for Storage only
# ---------------------------------------------------------------------------------------


def test_worker_jwt_reads_no_tables_and_changes_no_jobs(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F5: a request carrying
    SUPABASE_WORKER_JWT (role import_storage_reader) cannot read anyone's chunks, soulprints
    or jobs through PostgREST/GraphQL, acknowledge an event or cancel a job; it reads objects
    of bucket `imports` and nothing else."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        event_id = conn.execute(
            "select id from public.import_events where job_id = %s", (job_id,)
        ).fetchone()[0]
        conn.execute("insert into storage.buckets (id, name) values ('avatars', 'avatars')")
        conn.execute(
            "insert into storage.objects (bucket_id, name, version) values ('avatars', %s, 'v1')",
            (f"{user}/face.png",),
        )

    attacks = [
        ("select * from public.memory_chunks", ()),
        ("select * from public.soulprints", ()),
        ("select * from public.import_jobs", ()),
        ("select * from public.import_conversations", ()),
        ("select * from public.import_events", ()),
        ("select public.ack_import_event(%s)", (event_id,)),
        ("select public.request_import_cancel(%s)", (job_id,)),
        ("select public.claim_import_job(%s, 'queued', 'x', 60)", (job_id,)),
    ]
    for sql, params in attacks:
        with as_storage_jwt(db_url) as conn, pytest.raises(DENIED):
            conn.execute(sql, params)

    with as_storage_jwt(db_url) as conn:
        names = [r["name"] for r in conn.execute("select name from storage.objects")]
        assert names == [f"{user}/export.zip"]
    assert jobs_for(db_url, user)[0]["stage"] == "queued"
    with psycopg.connect(db_url) as conn:
        assert (
            conn.execute(
                "select acknowledged_at from public.import_events where id = %s", (event_id,)
            ).fetchone()[0]
            is None
        )


def test_a_jwt_naming_the_worker_db_role_is_refused(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F5: PostgREST, GraphQL
    and Storage log in as authenticator and switch to the JWT's role; the database role the
    stages use (import_worker) is no longer one they can switch to, so a JWT claiming it
    gets nothing."""
    with psycopg.connect(as_role(db_url, "authenticator")) as conn, pytest.raises(DENIED):
        conn.execute("set role import_worker")


def test_worker_jwt_role_may_execute_no_public_function(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F5: the Storage role has
    no function grants in schema public (every function added later must revoke PUBLIC's
    default EXECUTE), except the yes/no its own delete policy asks (security review
    findings 3 and 8: may this exact object of a complete import be deleted)."""
    with psycopg.connect(db_url) as conn:
        callable_ = [
            r[0]
            for r in conn.execute("""
            select p.oid::regprocedure::text from pg_proc p
             where p.pronamespace = 'public'::regnamespace
               and has_function_privilege('import_storage_reader', p.oid, 'EXECUTE')
        """)
        ]
    assert callable_ == ["imports_export_is_imported(text,text,text)"]


def test_worker_reads_only_data_of_active_imports(db_url: str, worker_db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F5: the worker's own
    database role reads the chunks and conversations of imports in progress (what the stages
    need), not every person's finished memory, and no soulprints. Security review finding 1:
    nor the custom instructions (import_person_notes) of finished imports."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.import_conversations (job_id, conversation_id,"
            " user_id, title) values (%s, 'c1', %s, 'private')",
            (job_id, user),
        )
        conn.execute(
            "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
            " chunk_index, content, embedding, embedding_model, embedding_dim)"
            " values (%s, %s, %s, 'c1', 0, 'secret', '{0.1,0.2,0.3}'::real[], 'm', 3)",
            (uuid.uuid4(), job_id, user),
        )
        conn.execute(
            "insert into public.import_person_notes (job_id, user_id, kind, note,"
            " conversation_index, ordinal) values (%s, %s, 'about_user', 'private',"
            " 0, 0)",
            (job_id, user),
        )
    with psycopg.connect(worker_db_url) as w:
        assert w.execute("select count(*) from public.memory_chunks").fetchone()[0] == 1
        assert w.execute("select count(*) from public.import_person_notes").fetchone()[0] == 1
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update public.import_jobs set stage = 'complete' where id = %s", (job_id,))
    with psycopg.connect(worker_db_url) as w:
        assert w.execute("select count(*) from public.memory_chunks").fetchone()[0] == 0
        assert w.execute("select count(*) from public.import_conversations").fetchone()[0] == 0
        assert w.execute("select count(*) from public.import_person_notes").fetchone()[0] == 0
    with psycopg.connect(worker_db_url) as w, pytest.raises(DENIED):
        w.execute("select * from public.soulprints")


# ---------------------------------------------------------------------------------------
# F6: no TRUNCATE / REFERENCES / TRIGGER for API roles; the whole matrix
# ---------------------------------------------------------------------------------------


def test_truncate_of_user_profiles_is_refused_to_people_and_anon(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F6: TRUNCATE skips RLS;
    neither anon nor a signed-in person may wipe every profile."""
    user = create_user(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("insert into public.user_profiles (user_id) values (%s)", (user,))
    for who in (None, user):
        with user_session(db_url, who) as conn, pytest.raises(DENIED):
            conn.execute("truncate public.user_profiles")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select count(*) from public.user_profiles").fetchone()[0] == 1


def test_privilege_matrix_of_every_table_and_role(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F6: for every table the
    migrations create or alter, every API role and every table privilege, has_table_privilege
    says exactly what EXPECTED says; and no API role holds TRUNCATE, REFERENCES or TRIGGER on
    any table of schema public (tables added later included)."""
    with psycopg.connect(db_url) as conn:
        got: dict[tuple[str, str], set[str]] = {}
        for role in API_ROLES:
            for table in OUR_TABLES:
                got[(role, table)] = {
                    priv
                    for priv in PRIVILEGES
                    if conn.execute(
                        "select has_table_privilege(%s, %s, %s)", (role, f"public.{table}", priv)
                    ).fetchone()[0]
                }
        wrong = {
            k: (got[k], EXPECTED.get(k, set())) for k in got if got[k] != EXPECTED.get(k, set())
        }
        assert wrong == {}

        dangerous = conn.execute("""
            select c.relname, r.rolname, p.priv
              from pg_class c
              cross join (values ('anon'), ('authenticated'), ('import_worker'),
                                 ('import_storage_reader')) r(rolname)
              cross join (values ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) p(priv)
             where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
               and has_table_privilege(r.rolname, c.oid, p.priv)
        """).fetchall()
        assert dangerous == []
        storage_reader_on_public = conn.execute("""
            select c.relname from pg_class c
             where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
               and has_table_privilege('import_storage_reader', c.oid,
                                       'SELECT, INSERT, UPDATE, DELETE')
        """).fetchall()
        assert storage_reader_on_public == []


# ---------------------------------------------------------------------------------------
# F9: receipts are kept at least as long as a signature is valid
# ---------------------------------------------------------------------------------------


def test_pruning_receipts_younger_than_the_signature_tolerance_is_refused(
    db_url: str, worker_db_url: str
) -> None:
    """Guards pitfall 7 (duplicate imports), issue 8 F9: pruning with a negative or short
    interval would forget webhook-ids a replayed request may still carry a valid signature
    for (5 minutes); the function refuses it and the receipts stay."""
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        w.execute("insert into public.webhook_receipts (webhook_id) values ('msg_1')")
        for interval in ("-100 years", "0 seconds", "4 minutes 59 seconds"):
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                w.execute("select public.prune_webhook_receipts(%s::interval)", (interval,))
        assert w.execute("select public.prune_webhook_receipts('5 minutes')").fetchone()[0] == 0
        assert w.execute("select count(*) from public.webhook_receipts").fetchone()[0] == 1


# ---------------------------------------------------------------------------------------
# F10: lease and checkpoint are the pipeline's, not the person's
# ---------------------------------------------------------------------------------------


def test_a_person_cannot_read_lease_or_checkpoint_of_their_job(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F10: a person reads their
    job's stage, counters and timings (what the app shows, and what Realtime sends, since
    Realtime drops columns the role may not select) but not the worker's lease or checkpoint."""
    user = create_user(db_url)
    upload_object(db_url, user)
    with user_session(db_url, user) as conn:
        row = conn.execute(
            "select id, stage, bytes_total, stage_timings, error_message,"
            " created_at from public.import_jobs"
        ).fetchone()
        assert row["stage"] == "queued"
    for column in HIDDEN_JOB_COLUMNS:
        with user_session(db_url, user) as conn, pytest.raises(DENIED):
            conn.execute(f"select {column} from public.import_jobs")
    with psycopg.connect(db_url) as conn:
        visible = {
            r[0]
            for r in conn.execute("""
            select a.attname from pg_attribute a
             where a.attrelid = 'public.import_jobs'::regclass and a.attnum > 0
               and not a.attisdropped
               and has_column_privilege('authenticated', a.attrelid, a.attnum, 'SELECT')
        """)
        }
        every = {
            r[0]
            for r in conn.execute("""
            select a.attname from pg_attribute a
             where a.attrelid = 'public.import_jobs'::regclass and a.attnum > 0
               and not a.attisdropped
        """)
        }
    assert visible == every - set(HIDDEN_JOB_COLUMNS)


# ---------------------------------------------------------------------------------------
# F11: the import columns are the pipeline's, whatever the app's roles
# ---------------------------------------------------------------------------------------


def test_an_app_role_cannot_forge_the_soulprint_column(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F11: an app's own role
    with UPDATE on user_profiles (not anon, not authenticated) still cannot write the import
    columns; only the pipeline's functions do."""
    user = create_user(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.user_profiles (user_id, soulprint_text) values (%s, 'real')",
            (user,),
        )
        conn.execute(
            "do $$ begin create role app_editor nologin; exception when"
            " duplicate_object then null; end $$"
        )
        conn.execute("grant usage on schema public to app_editor")
        conn.execute("grant select, insert, update on public.user_profiles to app_editor")
        conn.execute(
            "create policy app_editor_all on public.user_profiles for all"
            " to app_editor using (true) with check (true)"
        )
    with psycopg.connect(db_url) as conn:
        conn.execute("set local role app_editor")
        with pytest.raises(DENIED):
            conn.execute(
                "update public.user_profiles set soulprint_text = 'forged' where user_id = %s",
                (user,),
            )
        conn.rollback()
        conn.execute("set local role app_editor")
        other = create_user(db_url)
        conn.execute(
            "insert into public.user_profiles (user_id, soulprint_text,"
            " current_import_id) values (%s, 'forged', gen_random_uuid())",
            (other,),
        )
        conn.commit()
    with psycopg.connect(db_url) as conn:
        assert (
            conn.execute(
                "select soulprint_text from public.user_profiles where user_id = %s", (user,)
            ).fetchone()[0]
            == "real"
        )
        assert conn.execute(
            "select soulprint_text, current_import_id from public.user_profiles where user_id = %s",
            (other,),
        ).fetchone() == (None, None)


def test_pinning_keeps_every_path_but_moves_pg_temp_last(db_url: str) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F1: the migration's
    pass over pinned search_paths turns the signing function's `extensions, pg_catalog`
    into `extensions, pg_catalog, pg_temp` and an app's definer function's `public` into
    `pg_catalog, public, pg_temp` (pg_catalog was implicitly first), so names resolve as
    before with the caller's temporary objects last. Re-running the migration is harmless."""
    from pipeline.migrate import list_migrations

    migration = next(m for m in list_migrations() if m.name == "security_roles")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("create schema if not exists extensions")
        for name, path in (
            ("t_sig", "extensions, pg_catalog"),
            ("t_app", "public"),
            ("t_user", '"$user", public'),
            ("t_temp_first", "pg_temp, public"),
        ):
            conn.execute(
                f"create function public.{name}() returns int language sql"
                f" security definer set search_path = {path} as $$ select 1 $$"
            )
        conn.execute(migration.path.read_text())
        got = {
            r[0]: search_path_of(r[1])
            for r in conn.execute(
                "select proname, proconfig from pg_proc"
                " where proname in ('t_sig', 't_app', 't_user', 't_temp_first')"
            )
        }
    assert got == {
        "t_sig": ["extensions", "pg_catalog", "pg_temp"],
        "t_app": ["pg_catalog", "public", "pg_temp"],
        "t_user": ["pg_catalog", "$user", "public", "pg_temp"],
        "t_temp_first": ["pg_catalog", "public", "pg_temp"],
    }


def test_worker_can_run_the_janitors_query(db_url: str, worker_db_url: str) -> None:
    """Issue 15 item 4: the janitor runs as the worker role (no extra grant): it reads the
    stage and lease of the jobs whose export copies are on its disk."""
    from pipeline.queries import QUERIES

    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    with psycopg.connect(worker_db_url) as w:
        rows = w.execute(QUERIES["janitor_job_states"], ([job_id, uuid.uuid4()],)).fetchall()
    assert rows == [(job_id, "queued", None, False)]
