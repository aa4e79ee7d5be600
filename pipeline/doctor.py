"""`doctor`: check a deployment against its own settings, one verdict per piece.

Every piece this pipeline needs from its surroundings can be missing without any error:
no pg_net or Vault secret (events never leave the database), a Storage policy the migration
could not create (uploads refused), a disabled upload trigger (uploads start nothing), a
worker role with more than it should have. Each check here looks at one piece and, when it
is wrong, says how to fix it. Run with an admin URL (the `postgres` role): some checks read
Vault and make a test upload in a transaction that is rolled back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pipeline.migrate import list_migrations
from pipeline.outbox_health import OLDEST_UNACKNOWLEDGED, UNDELIVERED_WARN_SECONDS, outbox_lag
from pipeline.settings import Settings

Status = Literal["ok", "FAIL", "skip"]
Delivery = Literal["pg_net", "relay"]

WORKER_ROLE = "import_worker"
SEARCH_ROLE = "import_searcher"
BUCKET = "imports"
UPLOAD_TRIGGERS = ("import_job_on_upload", "import_job_on_reupload")
STORAGE_POLICIES = {
    "objects": ("imports: upload to own folder", "imports: read own folder",
                "imports: replace in own folder", "imports: delete own exports",
                "imports: own folder only", "imports: worker reads",
                "imports: worker deletes imported exports"),
    "buckets": ("imports: worker sees its bucket",),
}
STORAGE_MIGRATION = "20261130200000_storage_hosted.sql"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str = ""
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name}"
        if self.detail:
            text += f": {self.detail}"
        if self.status == "FAIL" and self.fix:
            text += f" -- fix: {self.fix}"
        return text


def ok(name: str, detail: str = "") -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "FAIL", detail, fix)


@dataclass
class Deployment:
    """What doctor checks: the database (admin URL), the settings, and how events leave."""

    conn: psycopg.Connection[dict[str, Any]]
    settings: Settings
    delivery: Delivery
    receiver_url: str | None = None  # the receiver's base or webhook URL, if known
    vault_url: str | None = field(default=None, init=False)

    def one(self, sql: str, params: tuple[object, ...] = ()) -> dict[str, Any] | None:
        return self.conn.execute(sql, params).fetchone()

    def storage_role(self) -> str:
        """The role the worker's Storage JWT carries (a Storage-only role where one exists)."""
        row = self.one("select 1 as x from pg_roles where rolname = 'import_storage_reader'")
        return "import_storage_reader" if row else WORKER_ROLE


# -- the database -----------------------------------------------------------------------

APPLIED_VERSIONS = "select version from supabase_migrations.schema_migrations"


def check_migrations(d: Deployment) -> Check:
    name = "migrations applied"
    try:
        applied = {r["version"] for r in d.conn.execute(APPLIED_VERSIONS)}
    except psycopg.errors.UndefinedTable:
        d.conn.rollback()
        applied = set()
    missing = [m.label for m in list_migrations() if m.version not in applied]
    if missing:
        return fail(name, f"{len(missing)} not applied: {', '.join(missing)}",
                    "supabase db push (over a direct or session-mode connection)")
    return ok(name, f"{len(list_migrations())} of {len(list_migrations())}")


# -- delivery ---------------------------------------------------------------------------

HAS_PG_NET = ("select to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)')"
              " is not null as present")
HAS_SIGNING = ("select to_regprocedure('public.standard_webhook_signature(text,bigint,text,text)')"
               " is not null as present")
HAS_VAULT = "select to_regclass('vault.decrypted_secrets') is not null as present"
# Which of our two Vault secrets exist (never their values).
VAULT_NAMES = ("select name from vault.decrypted_secrets"
               " where name in ('soulprint_webhook_url', 'soulprint_webhook_secret')"
               " and coalesce(decrypted_secret, '') <> ''")
VAULT_URL = ("select decrypted_secret as url from vault.decrypted_secrets"
             " where name = 'soulprint_webhook_url' limit 1")
# A signature made in SQL with the secret in Vault; the secret never leaves the database.
SQL_SIGNATURE = """
    select public.standard_webhook_signature(
             %s, %s, %s,
             (select decrypted_secret from vault.decrypted_secrets
               where name = 'soulprint_webhook_secret' limit 1)) as signature
"""


def check_pg_net(d: Deployment) -> Check:
    name = "pg_net"
    if d.delivery == "relay":
        return Check(name, "skip", "delivery by the relay (soulprint-import relay)")
    if d.one(HAS_PG_NET)["present"]:
        return ok(name, "net.http_post available")
    return fail(name, "pg_net is not installed: events never leave the database",
                "dashboard > Database > Extensions > enable pg_net (or: create extension "
                "pg_net with schema extensions;), or run the relay and use --delivery relay")


def check_vault(d: Deployment) -> Check:
    name = "Vault secrets"
    if d.delivery == "relay":
        return Check(name, "skip", "delivery by the relay")
    if not d.one(HAS_VAULT)["present"]:
        return fail(name, "Supabase Vault (vault.decrypted_secrets) is missing",
                    "dashboard > Database > Extensions > enable supabase_vault")
    names = {r["name"] for r in d.conn.execute(VAULT_NAMES)}
    missing = sorted({"soulprint_webhook_url", "soulprint_webhook_secret"} - names)
    if missing:
        return fail(name, f"missing: {', '.join(missing)}",
                    "select vault.create_secret('<value>', '<name>'); for each (README, "
                    "Deploying > Supabase, step 4)")
    d.vault_url = d.one(VAULT_URL)["url"]
    return ok(name, "soulprint_webhook_url and soulprint_webhook_secret present")


def check_sql_signature(d: Deployment) -> Check:
    name = "SQL signature verifies with WEBHOOK_SECRET"
    if d.delivery == "relay":
        return Check(name, "skip", "the relay signs in Python")
    if not d.one(HAS_SIGNING)["present"]:
        return fail(name, "public.standard_webhook_signature is missing (pgcrypto absent?)",
                    "dashboard > Database > Extensions > enable pgcrypto, then re-apply "
                    "20261128110100_webhook_signing.sql")
    secrets = [s for s in (d.settings.webhook_secret, d.settings.webhook_secret_previous) if s]
    if not secrets:
        return fail(name, "WEBHOOK_SECRET is not set here", "set WEBHOOK_SECRET (the receiver's)")
    from svix.webhooks import Webhook, WebhookVerificationError

    msg_id, ts, body = f"doctor_{uuid.uuid4().hex}", int(time.time()), '{"type":"doctor"}'
    try:
        row = d.one(SQL_SIGNATURE, (msg_id, ts, body))
    except psycopg.Error as exc:
        d.conn.rollback()
        return fail(name, f"signing failed in SQL ({type(exc).__name__})",
                    "check pgcrypto and the Vault secret soulprint_webhook_secret")
    signature = (row or {}).get("signature")
    if not signature:
        return fail(name, "no signature (Vault secret missing?)",
                    "select vault.create_secret('whsec_...', 'soulprint_webhook_secret');")
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts),
               "webhook-signature": f"v1,{signature}"}
    for secret in secrets:
        try:
            Webhook(secret).verify(body.encode(), headers)
            return ok(name)
        except WebhookVerificationError:
            continue
    return fail(name, "the receiver would refuse every event (401): Vault's "
                "soulprint_webhook_secret differs from WEBHOOK_SECRET",
                "put the same whsec_ value in both (vault.update_secret / the Render env)")


def _healthz_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/healthz", "", ""))


def check_receiver(d: Deployment) -> Check:
    name = "receiver answers /healthz"
    url = d.receiver_url or (d.settings.receiver_url if d.delivery == "relay" else None)
    if url is None and d.vault_url and urlsplit(d.vault_url).path.endswith("/webhooks/supabase"):
        url = d.vault_url
    if not url:
        return fail(name, "no receiver URL known (Vault points elsewhere, e.g. Svix Ingest)",
                    "pass --receiver-url https://<service>.onrender.com")
    target = _healthz_url(url)
    try:
        resp = httpx.get(target, timeout=60.0)  # a sleeping free instance takes 30-60 s
    except httpx.HTTPError as exc:
        return fail(name, f"{urlsplit(target).netloc}: {type(exc).__name__}",
                    "check the Render service is deployed and the URL in Vault/RECEIVER_URL")
    if resp.status_code != 200:
        return fail(name, f"{urlsplit(target).netloc} answered {resp.status_code}",
                    "see the service's logs (database unreachable?)")
    return ok(name, urlsplit(target).netloc)


def check_outbox(d: Deployment) -> Check:
    name = "events delivered"
    lag = outbox_lag(d.one(OLDEST_UNACKNOWLEDGED))
    if lag.stuck:
        return fail(name, f"{lag.unacknowledged} unacknowledged, the oldest for "
                    f"{lag.oldest_age_s:.0f} s (over {UNDELIVERED_WARN_SECONDS:.0f} s)",
                    "fix the failing checks above; then `soulprint-import sweep` re-announces")
    age = "none waiting" if lag.oldest_age_s is None else (
        f"{lag.unacknowledged} waiting, oldest {lag.oldest_age_s:.0f} s")
    return ok(name, age)


# -- roles ------------------------------------------------------------------------------

WORKER_POWERS = """
    select r.rolsuper, r.rolbypassrls,
           pg_has_role(r.rolname, 'service_role', 'MEMBER') as service_role,
           pg_has_role(r.rolname, 'authenticated', 'MEMBER') as authenticated,
           has_database_privilege(r.rolname, current_database(), 'TEMP') as temp,
           has_table_privilege(r.rolname, 'auth.users', 'SELECT') as auth_users
      from pg_roles r where r.rolname = %s
"""


def check_worker_role(d: Deployment) -> Check:
    name = f"worker role {WORKER_ROLE} least privilege"
    row = d.one(WORKER_POWERS, (WORKER_ROLE,))
    if row is None:
        return fail(name, "the role does not exist", "supabase db push")
    wrong = [label for key, label in (
        ("rolsuper", "superuser"), ("rolbypassrls", "bypassrls"),
        ("service_role", "member of service_role"),
        # May `set role authenticated` and so read any person's memory (issue 8 F5).
        ("authenticated", "member of authenticated"), ("temp", "TEMP on the database"),
        ("auth_users", "reads auth.users")) if row[key]]
    if wrong:
        return fail(name, "has " + ", ".join(wrong),
                    f"alter role {WORKER_ROLE} nosuperuser nobypassrls; revoke service_role "
                    f"from {WORKER_ROLE}; revoke authenticated from {WORKER_ROLE}; "
                    f"revoke temp on database postgres from public; "
                    f"revoke all on auth.users from {WORKER_ROLE};")
    return ok(name, "no superuser, bypassrls, service_role, authenticated, TEMP or auth.users")


# The search role: logs in, inherits nothing, and its only membership is `authenticated`
# (the switch /v1/search makes after verifying a person's token).
SEARCH_ROLE_POWERS = """
    select r.rolcanlogin, r.rolinherit, r.rolsuper, r.rolbypassrls,
           has_database_privilege(r.rolname, current_database(), 'TEMP') as temp,
           array(select g.rolname::text from pg_auth_members m
                   join pg_roles g on g.oid = m.roleid
                  where m.member = r.oid order by 1) as member_of
      from pg_roles r where r.rolname = %s
"""


def check_search_role(d: Deployment) -> Check:
    name = f"search role {SEARCH_ROLE} only a member of authenticated"
    row = d.one(SEARCH_ROLE_POWERS, (SEARCH_ROLE,))
    if row is None:
        return fail(name, "the role does not exist", "supabase db push")
    wrong = [label for key, label in (
        ("rolsuper", "superuser"), ("rolbypassrls", "bypassrls"), ("rolinherit", "inherit"),
        ("temp", "TEMP on the database")) if row[key]]
    if not row["rolcanlogin"]:
        wrong.append("no login")
    others = [r for r in row["member_of"] if r != "authenticated"]
    if others:
        wrong.append("member of " + ", ".join(others))
    if "authenticated" not in row["member_of"]:
        wrong.append("not a member of authenticated (POST /v1/search cannot run)")
    if wrong:
        revokes = "".join(f"revoke {r} from {SEARCH_ROLE}; " for r in others)
        return fail(name, "wrong: " + ", ".join(wrong),
                    f"alter role {SEARCH_ROLE} login noinherit nosuperuser nobypassrls; "
                    f"{revokes}grant authenticated to {SEARCH_ROLE}; "
                    f"revoke temp on database postgres from public;")
    return ok(name, "login, noinherit, no superuser, bypassrls or TEMP")


# Storage policies the role is subject to whose expression does not pin bucket `imports`.
STORAGE_ROLE_POLICIES = """
    select p.tablename, p.policyname, p.cmd
      from pg_policies p
     where p.schemaname = 'storage' and p.tablename in ('objects', 'buckets')
       and p.permissive = 'PERMISSIVE'
       and (%s::name = any(p.roles) or 'public' = any(p.roles))
       and coalesce(p.qual, '') || coalesce(p.with_check, '') not like '%%''imports''%%'
"""
ROLE_POWERS = "select rolsuper, rolbypassrls from pg_roles where rolname = %s"


def check_storage_role(d: Deployment) -> Check:
    role = d.storage_role()
    name = f"Storage role {role} limited to bucket {BUCKET}"
    powers = d.one(ROLE_POWERS, (role,))
    if powers is None:
        return fail(name, "the role does not exist", "supabase db push")
    if powers["rolsuper"] or powers["rolbypassrls"]:
        return fail(name, "bypasses row level security",
                    f"alter role {role} nosuperuser nobypassrls;")
    wider = [f"{r['policyname']} ({r['cmd']} on {r['tablename']})"
             for r in d.conn.execute(STORAGE_ROLE_POLICIES, (role,))]
    if wider:
        return fail(name, "policies reach beyond it: " + "; ".join(wider),
                    "drop those policies or add bucket_id = 'imports' to them")
    return ok(name)


# -- Storage ----------------------------------------------------------------------------

EXISTING_POLICIES = ("select tablename, policyname from pg_policies"
                     " where schemaname = 'storage' and policyname like 'imports:%'")
OBJECTS_RLS = "select relrowsecurity as rls from pg_class where oid = 'storage.objects'::regclass"
TRIGGERS = ("select tgname, tgenabled from pg_trigger"
            " where tgrelid = 'storage.objects'::regclass and tgname = any(%s::name[])")
BUCKET_ROW = "select to_jsonb(b) as bucket from storage.buckets b where b.id = %s"


def check_storage_policies(d: Deployment) -> Check:
    name = f"Storage policies on bucket {BUCKET}"
    have = {(r["tablename"], r["policyname"]) for r in d.conn.execute(EXISTING_POLICIES)}
    missing = [f'"{p}"' for tbl, names in STORAGE_POLICIES.items() for p in names
               if (tbl, p) not in have]
    if not d.one(OBJECTS_RLS)["rls"]:
        return fail(name, "row level security is off on storage.objects",
                    "alter table storage.objects enable row level security; (as its owner)")
    if missing:
        return fail(name, f"missing: {', '.join(missing)}",
                    f"the NOTICEs of {STORAGE_MIGRATION} give each one's SQL: run it as the "
                    "owner of storage.objects, or create it in the dashboard (Storage > "
                    "Policies)")
    return ok(name, f"{len(have)} present, RLS on")


def check_upload_triggers(d: Deployment) -> Check:
    name = "upload triggers on storage.objects"
    rows = {r["tgname"]: r["tgenabled"] for r in d.conn.execute(TRIGGERS, (list(UPLOAD_TRIGGERS),))}
    missing = [t for t in UPLOAD_TRIGGERS if t not in rows]
    disabled = [t for t, state in rows.items() if state == "D"]
    if missing:
        return fail(name, f"missing: {', '.join(missing)}",
                    f"re-apply {STORAGE_MIGRATION} (its NOTICE gives the SQL)")
    if disabled:
        return fail(name, f"disabled: {', '.join(disabled)}",
                    "; ".join(f"alter table storage.objects enable trigger {t}"
                              for t in disabled) + ";")
    return ok(name, "present and enabled")


def check_test_upload(d: Deployment) -> Check:
    """An upload as Storage writes it, by a throwaway person, in a transaction that is
    rolled back: the job must appear (nothing is sent: pg_net posts only at commit)."""
    name = "a test upload creates an import job"
    person = uuid.uuid4()
    try:
        with d.conn.transaction(force_rollback=True):
            d.conn.execute("insert into auth.users (id, aud, role, email) values "
                           "(%s, 'authenticated', 'authenticated', %s)",
                           (person, f"doctor-{person}@invalid"))
            d.conn.execute(
                "insert into storage.objects (bucket_id, name, owner, owner_id, metadata,"
                " version) values (%s, %s, %s, %s, %s, %s)",
                (BUCKET, f"{person}/doctor.zip", person, str(person),
                 Jsonb({"size": 1, "mimetype": "application/zip"}), uuid.uuid4().hex))
            row = d.one("select stage::text as stage from public.import_jobs"
                        " where user_id = %s", (person,))
    except psycopg.Error as exc:
        return fail(name, f"the test upload failed: {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0]}",
                    "run doctor with an admin URL (--database-url, the postgres role)")
    if row is None or row["stage"] != "queued":
        return fail(name, "no job was created", "see the upload trigger and policy checks")
    return ok(name, "queued, then rolled back")


def check_versioning(d: Deployment) -> Check:
    name = f"bucket {BUCKET} private, versioning off"
    row = d.one(BUCKET_ROW, (BUCKET,))
    if row is None:
        return fail(name, "the bucket does not exist", "supabase db push")
    bucket = row["bucket"]
    if bucket.get("public"):
        return fail(name, "the bucket is public", f"update storage.buckets set public = false "
                    f"where id = '{BUCKET}';")
    status = bucket.get("versioning_status", "DISABLED")
    if status != "DISABLED":
        return fail(name, f"versioning is {status}: deleted exports would be kept",
                    f"turn versioning off for bucket {BUCKET} (dashboard), or: update "
                    f"storage.buckets set versioning_status = 'DISABLED' where id = '{BUCKET}';")
    return ok(name)


CHECKS: tuple[Callable[[Deployment], Check], ...] = (
    check_migrations,
    check_pg_net,
    check_vault,
    check_sql_signature,
    check_receiver,
    check_worker_role,
    check_search_role,
    check_storage_role,
    check_storage_policies,
    check_upload_triggers,
    check_test_upload,
    check_versioning,
    check_outbox,
)


def run_checks(conninfo: str, settings: Settings, *, delivery: Delivery,
               receiver_url: str | None = None) -> Iterator[Check]:
    """Each check's verdict, in order. A database that cannot be reached is one FAIL."""
    try:
        conn = psycopg.connect(conninfo, row_factory=dict_row, autocommit=True,
                               connect_timeout=10, prepare_threshold=None)
    except psycopg.Error as exc:
        yield fail("database reachable", type(exc).__name__,
                   "check --database-url / DATABASE_URL (direct or session-mode connection)")
        return
    with conn:
        yield ok("database reachable")
        d = Deployment(conn, settings, delivery, receiver_url)
        for check in CHECKS:
            try:
                yield check(d)
            except psycopg.Error as exc:
                yield fail(check.__name__.removeprefix("check_").replace("_", " "),
                           f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                           "run doctor with an admin URL (--database-url, the postgres role)")
