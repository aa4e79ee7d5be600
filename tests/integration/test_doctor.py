"""`soulprint-import doctor` on the embedded database: all ok on a healthy deployment, and
one FAIL with its fix for each broken piece (issue 8 "hosted delivery must be verifiable",
issue 16 point 4).

The embedded server has neither pg_net, Vault nor pgcrypto: stand-ins with the real names
and signatures take their place, and the signing function is a real HMAC-SHA256 written
with core sha256(), so the signature doctor checks is the one svix verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from handlers.app import create_app
from handlers.server import serve_in_thread
from pipeline import lifecycle
from pipeline.doctor import Check, run_checks
from pipeline.embedding.minilm import MiniLMEmbedder, default_cache_dir
from pipeline.settings import Settings
from tests.dbutil import create_user, upload_object

SECRET = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
OTHER_SECRET = "whsec_" + "dGhpcyBpcyBub3QgdGhlIHJpZ2h0IG9uZQ=="

STANDINS = """
create schema net;
create table net.requests (id bigserial primary key, url text, body jsonb, headers jsonb);
create function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
                              headers jsonb default '{}', timeout_milliseconds int default 5000)
returns bigint language sql as $$
  insert into net.requests (url, body, headers) values (url, body, headers) returning id
$$;
create schema vault;
create table vault.secrets (name text primary key, decrypted_secret text);
create view vault.decrypted_secrets as select name, decrypted_secret from vault.secrets;
-- HMAC-SHA256 (RFC 2104) over core sha256(): what pgcrypto's hmac() computes.
create function public.standard_webhook_signature(msg_id text, ts bigint, body text,
                                                  secret text)
returns text language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  key bytea := decode(case when secret like 'whsec\\_%' then substr(secret, 7) else secret end,
                      'base64');
  msg bytea := convert_to(msg_id || '.' || ts::text || '.' || body, 'UTF8');
  ipad bytea;
  opad bytea;
begin
  if length(key) > 64 then key := sha256(key); end if;
  key := key || decode(repeat('00', 64 - length(key)), 'hex');
  ipad := key;
  opad := key;
  for i in 0..63 loop
    ipad := set_byte(ipad, i, get_byte(key, i) # 54);
    opad := set_byte(opad, i, get_byte(key, i) # 92);
  end loop;
  return encode(sha256(opad || sha256(ipad || msg)), 'base64');
end
$$;
-- As 20261128110100_webhook_signing.sql leaves the real one: nobody but its owner.
revoke all on function public.standard_webhook_signature(text, bigint, text, text)
  from public, anon, authenticated;
"""


@dataclass
class Deployed:
    db_url: str
    settings: Settings
    receiver: str

    def checks(self, **kw: object) -> list[Check]:
        return list(run_checks(self.db_url, self.settings, delivery="pg_net", **kw))


@pytest.fixture
def deployed(db_url: str, worker_db_url: str, tmp_path: Path) -> Iterator[Deployed]:
    """A healthy hosted-shape deployment: pg_net, Vault and signing stand-ins configured
    with the receiver's URL and secret, the receiver up on loopback."""
    lifecycle.reset()
    # The graph prebuilt, as `models build` leaves a deploy: the session's shared cache
    # (SOULPRINT_MODEL_CACHE_DIR, tests/conftest.py), built once.
    cache = default_cache_dir()
    settings = Settings(webhook_secret=SECRET, data_dir=tmp_path, model_cache_dir=cache)
    MiniLMEmbedder(cache_dir=cache).warm_up()
    handle = serve_in_thread(create_app(settings, conninfo=worker_db_url, shutdown_grace_s=5))
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(STANDINS)
        conn.execute(
            "insert into vault.secrets values ('soulprint_webhook_url', %s),"
            " ('soulprint_webhook_secret', %s)",
            (handle.url + "/webhooks/supabase", SECRET),
        )
        # The roles migration (issue 8 F1, branch sec-roles) takes TEMP from the worker;
        # until it is merged, do it here. A no-op afterwards.
        if conn.execute(
            "select has_database_privilege('import_worker', current_database(), 'TEMP')"
        ).fetchone()[0]:
            conn.execute(f'revoke temporary on database "{conn.info.dbname}" from public')
    try:
        yield Deployed(db_url, settings, handle.url)
    finally:
        handle.stop()
        lifecycle.reset()


def _failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == "FAIL"]


def test_doctor_passes_on_a_healthy_deployment(deployed: Deployed) -> None:
    """Guards pitfall 1 (work that vanishes): every piece hosted delivery and the upload
    trigger need is checked and found in place; the test upload is rolled back."""
    checks = deployed.checks()
    assert _failed(checks) == [], "\n".join(c.line() for c in checks)
    assert len([c for c in checks if c.status == "ok"]) == 18
    with psycopg.connect(deployed.db_url) as conn:
        assert conn.execute("select count(*) from public.import_jobs").fetchone()[0] == 0
        assert conn.execute("select count(*) from net.requests").fetchone()[0] == 0


BROKEN = {
    "pg_net missing": ("drop schema net cascade", "pg_net", "create extension pg_net"),
    "Vault secret missing": (
        "delete from vault.secrets where name = 'soulprint_webhook_secret'",
        "Vault secrets",
        "vault.create_secret",
    ),
    "Vault secret differs": (
        f"update vault.secrets set decrypted_secret = '{OTHER_SECRET}'"
        " where name = 'soulprint_webhook_secret'",
        "SQL signature",
        "same whsec_",
    ),
    "signing function missing": (
        "drop function public.standard_webhook_signature",
        "SQL signature",
        "pgcrypto",
    ),
    "receiver down": (
        "update vault.secrets set decrypted_secret ="
        " 'http://127.0.0.1:9/webhooks/supabase'"
        " where name = 'soulprint_webhook_url'",
        "receiver",
        "Render service",
    ),
    "worker reads auth.users": (
        "grant select on auth.users to import_worker",
        "worker role",
        "revoke all on auth.users",
    ),
    "worker may create temp objects": (
        "grant temporary on database {db} to import_worker",
        "worker role",
        "revoke temp",
    ),
    "Storage role reads other buckets": (
        'create policy "worker reads all" on storage.objects'
        " for select to import_storage_reader using (true)",
        "Storage role",
        "bucket_id = 'imports'",
    ),
    "policy missing": (
        'drop policy "imports: delete own exports" on storage.objects',
        "Storage policies",
        "Storage > Policies",
    ),
    "RLS off": (
        "alter table storage.objects disable row level security",
        "Storage policies",
        "enable row level security",
    ),
    "trigger disabled": (
        "alter table storage.objects disable trigger import_job_on_upload",
        "upload triggers",
        "enable trigger import_job_on_upload",
    ),
    "trigger missing": (
        "drop trigger import_job_on_reupload on storage.objects",
        "upload triggers",
        "storage_hosted",
    ),
    "versioning on": (
        "update storage.buckets set versioning_status = 'ENABLED' where id = 'imports'",
        "versioning off",
        "DISABLED",
    ),
    "bucket public": (
        "update storage.buckets set public = true where id = 'imports'",
        "private",
        "public = false",
    ),
    # Security review finding 4: what doctor passed before.
    "RLS off on a public table": (
        "alter table public.memory_chunks disable row level security",
        "row level security on every table",
        "alter table public.memory_chunks enable row level security",
    ),
    "worker member of authenticated": (
        "grant authenticated to import_worker",
        "worker role",
        "revoke authenticated from import_worker",
    ),
    "worker member of pg_read_all_data": (
        "grant pg_read_all_data to import_worker",
        "worker role",
        "revoke pg_read_all_data from import_worker",
    ),
    "worker member of the superuser": (
        "grant {owner} to import_worker",
        "worker role",
        "from import_worker",
    ),
    "worker reads soulprints": (
        "grant select on public.soulprints to import_worker",
        "worker role",
        "revoke SELECT on public.soulprints",
    ),
    "worker creates in public": (
        "grant create on schema public to import_worker",
        "worker role",
        "revoke create on schema public",
    ),
    "anon may call a pipeline function": (
        "grant execute on function public.import_export_replaced(uuid) to anon",
        "functions anon",
        "revoke execute on function public.import_export_replaced(uuid)",
    ),
    "definer without a pinned path": (
        "alter function public.import_export_replaced(uuid) reset search_path",
        "SECURITY DEFINER",
        "search_path = pg_catalog, pg_temp",
    ),
    "definer with pg_temp first": (
        "alter function public.request_import_cancel(uuid) set search_path = pg_temp, public",
        "SECURITY DEFINER",
        "search_path = pg_catalog, pg_temp",
    ),
    # Mentions 'imports', so matching the policy text was not enough.
    "Storage role reads other buckets by a negated match": (
        'create policy "sneaky" on storage.objects for select to import_storage_reader'
        " using (bucket_id <> 'imports')",
        "Storage role",
        "bucket_id = 'imports'",
    ),
    "Storage role deletes exports still importing": (
        'drop policy "imports: worker deletes imported exports" on storage.objects;'
        ' create policy "imports: worker deletes imported exports" on storage.objects'
        " for delete to import_storage_reader using (bucket_id = 'imports')",
        "Storage role",
        "bucket_id = 'imports'",
    ),
    "Storage role member of authenticated": (
        "grant authenticated to import_storage_reader",
        "Storage role",
        "revoke authenticated from import_storage_reader",
    ),
    "Storage role reads a public table": (
        "grant select on public.import_jobs to import_storage_reader",
        "Storage role",
        "revoke all on public.import_jobs",
    ),
    # Right names, wrong expressions: a person reads and plants in another's folder.
    "policies with the right names but open expressions": (
        'alter policy "imports: own folder only" on storage.objects using (true)'
        " with check (true);"
        ' alter policy "imports: read own folder" on storage.objects'
        " using (bucket_id = 'imports');"
        ' alter policy "imports: upload to own folder" on storage.objects'
        " with check (bucket_id = 'imports')",
        "Storage policies",
        "re-apply",
    ),
    "trigger enabled as replica only": (
        "alter table storage.objects enable replica trigger import_job_on_upload",
        "upload triggers",
        "enable trigger import_job_on_upload",
    ),
    "trigger enabled always": (
        "alter table storage.objects enable always trigger import_job_on_reupload",
        "upload triggers",
        "enable trigger import_job_on_reupload",
    ),
    "migration not applied": (
        "delete from supabase_migrations.schema_migrations where version"
        " = (select max(version) from supabase_migrations"
        ".schema_migrations)",
        "migrations",
        "supabase db push",
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN))
def test_doctor_fails_each_broken_piece_with_its_fix(deployed: Deployed, broken: str) -> None:
    """Guards pitfall 1 (work that vanishes) and pitfall 3 (a worker that can read
    everything): each piece a deployment can silently lack is one FAIL line with a fix.
    Security review finding 4: policies, roles and functions are judged by what they let
    a role do (probes in rolled-back transactions), not by their names or text."""
    sql, check_name, fix = BROKEN[broken]
    with psycopg.connect(deployed.db_url, autocommit=True) as conn:
        owner = conn.execute("select current_user").fetchone()[0]
        conn.execute(sql.format(db=f'"{conn.info.dbname}"', owner=f'"{owner}"'))
    try:
        failed = _failed(deployed.checks())
    finally:
        # Role memberships are cluster-wide: undo them so later tests see the real roles.
        with psycopg.connect(deployed.db_url, autocommit=True) as conn:
            conn.execute(
                f'revoke authenticated, pg_read_all_data, "{owner}" from import_worker;'
                " revoke authenticated from import_storage_reader"
            )
    assert any(check_name in c.name for c in failed), [c.line() for c in failed]
    for c in failed:
        if check_name in c.name:
            assert fix in c.fix, c.line()


@pytest.mark.parametrize(
    "break_sql, undo_sql, check_name, fix",
    [
        (
            "grant authenticated to import_worker",
            "revoke authenticated from import_worker",
            "worker role",
            "revoke authenticated from import_worker",
        ),
        (
            "grant service_role to import_searcher",
            "revoke service_role from import_searcher",
            "search role",
            "revoke service_role from import_searcher",
        ),
        # Every grant, whoever made it (a REVOKE removes only the revoker's own grants).
        (
            "do $$ declare g text; begin for g in select gr.rolname from pg_auth_members m "
            "join pg_roles r on r.oid = m.roleid join pg_roles u on u.oid = m.member "
            "join pg_roles gr on gr.oid = m.grantor where r.rolname = 'authenticated' "
            "and u.rolname = 'import_searcher' loop execute format('revoke authenticated from "
            "import_searcher granted by %I', g); end loop; end $$",
            "grant authenticated to import_searcher",
            "search role",
            "grant authenticated to import_searcher",
        ),
    ],
)
def test_doctor_fails_a_worker_that_may_become_a_person_or_a_wider_search_role(
    deployed: Deployed, break_sql: str, undo_sql: str, check_name: str, fix: str
) -> None:
    """Guards pitfall 3 (a worker that can read everything), issue 8 F5: the worker may not
    switch to `authenticated`, and the search role's only membership is `authenticated`.
    Roles are cluster-wide, so the break is undone afterwards (hence not in BROKEN)."""
    with psycopg.connect(deployed.db_url, autocommit=True) as conn:
        conn.execute(break_sql)
    try:
        failed = _failed(deployed.checks())
        [c] = [c for c in failed if check_name in c.name]
        assert fix in c.fix, c.line()
    finally:
        with psycopg.connect(deployed.db_url, autocommit=True) as conn:
            conn.execute(undo_sql)


def test_doctor_fails_when_events_sit_undelivered(deployed: Deployed) -> None:
    """Guards pitfall 1 (work that vanishes): the oldest unacknowledged event's age is
    checked; 11 minutes is a FAIL."""
    upload_object(deployed.db_url, create_user(deployed.db_url))
    with psycopg.connect(deployed.db_url, autocommit=True) as conn:
        conn.execute("update public.import_events set created_at = now() - interval '11 min'")
    [failed] = _failed(deployed.checks())
    assert failed.name == "events delivered" and "oldest" in failed.detail


def test_the_doctor_command_prints_one_line_per_check_and_exits_1_on_fail(
    deployed: Deployed, tmp_path: Path
) -> None:
    """Guards pitfall 1 (work that vanishes): the CLI an operator runs after a deploy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "SUPABASE_"))}
    env.update(WEBHOOK_SECRET=SECRET, SOULPRINT_DATA_DIR=str(tmp_path))
    cmd = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "doctor",
        "--database-url",
        deployed.db_url,
        "--delivery",
        "pg_net",
    ]
    good = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert len(lines) == 18 and all(line.startswith("ok") for line in lines)
    assert SECRET not in good.stdout

    with psycopg.connect(deployed.db_url, autocommit=True) as conn:
        conn.execute("drop schema net cascade")
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    [line] = [x for x in bad.stdout.splitlines() if x.startswith("FAIL")]
    assert line.startswith("FAIL  pg_net") and " -- fix: " in line
    assert "create extension pg_net" in line


def test_doctor_in_relay_mode_skips_the_hosted_delivery_checks(deployed: Deployed) -> None:
    """Guards pitfall 1 (work that vanishes): local/relay deployments have no pg_net; the
    checks that only hosted delivery needs say so instead of failing."""
    settings = Settings(
        webhook_secret=SECRET,
        data_dir=deployed.settings.data_dir,
        receiver_url=deployed.receiver + "/webhooks/supabase",
        model_cache_dir=deployed.settings.model_cache_dir,
    )
    checks = list(run_checks(deployed.db_url, settings, delivery="relay"))
    assert _failed(checks) == [], [c.line() for c in checks]
    assert [c.name for c in checks if c.status == "skip"] == [
        "pg_net",
        "Vault secrets",
        "SQL signature verifies with WEBHOOK_SECRET",
    ]


def test_doctor_fails_when_the_model_graph_is_not_prebuilt(deployed: Deployed, tmp_path: Path):
    """Guards pitfall 6 (memory exhaustion): a worker whose cache has no graph for its
    MINILM_PRECISION builds it (~440 MB) during the first import, which a 512 MB instance
    does not survive; doctor says so and gives the command (review of issue 13, F3)."""
    cold = deployed.settings.model_copy(update={"model_cache_dir": tmp_path / "empty-cache"})
    [failed] = _failed(list(run_checks(deployed.db_url, cold, delivery="pg_net")))
    assert failed.name == "embedding model" and "int8" in failed.detail
    assert "soulprint-import models build" in failed.fix
    assert not (tmp_path / "empty-cache").exists()  # doctor looks, it does not build

    openai = cold.model_copy(update={"embedding_provider": "openai"})
    assert _failed(list(run_checks(deployed.db_url, openai, delivery="pg_net"))) == []
